"""One configuration source: every field a user sets for a run, declared once with its bounds,
choices and meaning.

The configuration classes (:class:`~jointtask_lib.tasks.TaskConfig`,
:class:`~jointtask_lib.train.Arch`, :class:`~jointtask_lib.model.ModelConfig`,
:class:`~jointtask_lib.train.TrainConfig`, :class:`~jointtask_lib.train.RunSpec`) validate their
fields with :func:`check_fields` against the sections below, and no other place declares a bound
of these fields:

* the ``jointtask train`` / ``jointtask data`` arguments are generated from them
  (:func:`jointtask_lib.cli_args.add_params`), with the allowed values in their help;
* the notebooks' preset and ``-p`` rules for these fields (``depth``, ``modulus``, ``moduli``,
  ``n_embed`` ...) are built from them (:func:`jointtask_lib.notebook.rule_for`), so a preset rule
  can no longer allow a value the library refuses;
* a sweep file's fields are named by their YAML path in every message (:func:`sweep_paths`,
  applied by :func:`jointtask_lib.validate.field_names` while the sweep builds its runs).

This module sits low in the import graph (it imports only :mod:`jointtask_lib.validate`): the CLI
and ``jointtask notebooks`` read it without importing torch.  Bounds that need a task family's
registry (which operations exist, how many arguments each takes) are checked by
:class:`~jointtask_lib.tasks.TaskConfig` against the registry; their entries here say so.  Paper B's
prompt shape (:data:`ICL_PROMPT`) and training recipe (:data:`ICL_TRAIN`, checked by
``paper_b.icl_train.ICLTrainConfig``; notebook 09's ``steps``, ``batch_size``, ``lr``, ``warmup``
and ``snapshot_prompts`` rules) are here too.

One name per quantity
---------------------
Every field has one name from the YAML file to the stored record; the names are unique across the
sections (a test checks it), so a flat name -> YAML path map is exact.  Where a grid lists several
values of one field, the list has the plural name:

========================  ===================  =====================  ====================  ==========
quantity                  sweep YAML           stored spec / record   ``jointtask train``   run name
========================  ===================  =====================  ====================  ==========
model width               ``grid.widths``      ``arch.n_embed``       ``--n-embed 16,32``   ``d16``
                          (a list of widths)
ListOps modulus           ``grid.moduli``      ``task.modulus``       ``--modulus``         ``n10``
permutation size k        ``grid.perm_ks``     ``task.perm_k``        ``--perm-k``          ``S3``
seed                      ``grid.seeds``       ``seed``               ``--seeds 0,1``       ``s0``
task mix                  ``grid.mixes[i]``    ``task.ops``           ``--ops``             ``ADD+MAX``
========================  ===================  =====================  ====================  ==========

The stored names (``n_embed``, ``modulus``, ``perm_k``) are part of every run's cache key
(:meth:`~jointtask_lib.train.RunSpec.key` hashes ``to_dict()``), so they stay as they are: renaming
one would orphan every cached run.  Notebooks that pick one width of a sweep call it ``width``
(one value of ``grid.widths``, checked against the sweep, not a model field; ``jointtask data
--sweep ... --width`` likewise), and paper B's
notebook sets ``n_embed`` directly (bounded by :data:`ARCH`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .validate import (MAX_EXAMPLES, MAX_SEED, check_bool, check_choice, check_float, check_int, float_range,
                       int_range, shown)

#: How a chain-of-thought is written (:mod:`jointtask_lib.tasks.core`).
COT_MODES = ("reduce", "none")
#: How the operations of a mix are combined (:mod:`jointtask_lib.tasks.core`).
MIXING_MODES = ("expression", "node")
#: How datasets are drawn (:func:`jointtask_lib.data.make_datasets`).
SAMPLING_MODES = ("iid", "unique")
LOSS_ON = ("after_eq", "full")
STEPS = ("fast", "reference")
#: Kinds checked here; the registry kinds are checked by TaskConfig against the family's registry.
SCALAR_KINDS = ("int", "float", "bool", "choice")
REGISTRY_KINDS = ("family", "ops", "weights", "op_args")


@dataclass(frozen=True)
class Param:
    """One field: its kind, bounds or choices, and what it means.

    ``kind``: ``int`` / ``float`` (``lo``..``hi``, open ends with ``lo_open``/``hi_open``),
    ``bool``, ``choice`` (one of ``choices``), or a registry kind (``family``, ``ops``, ``weights``,
    ``op_args``: checked by :class:`~jointtask_lib.tasks.TaskConfig`).  ``optional``: ``None`` is
    allowed (the library then picks).  ``cli``: the command-line flag (``""``: ``--`` and the name
    with dashes; ``None``: not on the command line); a ``bool`` whose default is true gets the flag
    that turns it off.
    """

    kind: str
    doc: str
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    choices: tuple = ()
    optional: bool = False
    cli: str | None = ""

    def check(self, name: str, value):
        """``value`` if this field allows it, else ``ValueError`` naming ``name`` (as shown to the
        user, :func:`jointtask_lib.validate.shown`) and the allowed values."""
        if value is None and self.optional:
            return value
        if self.kind == "int":
            return check_int(name, value, lo=self.lo, hi=self.hi)
        if self.kind == "float":
            return check_float(name, value, lo=self.lo, hi=self.hi, lo_open=self.lo_open, hi_open=self.hi_open)
        if self.kind == "bool":
            return check_bool(name, value)
        if self.kind == "choice":
            return check_choice(name, value, self.choices)
        return value  # a registry kind: TaskConfig checks it against the family's registry

    def allowed(self) -> str:
        """What values are allowed, in words (for help texts)."""
        if self.kind == "int":
            text = int_range(self.lo, self.hi)
        elif self.kind == "float":
            text = float_range(self.lo, self.hi, self.lo_open, self.hi_open)
        elif self.kind == "bool":
            text = "true or false"
        elif self.kind == "choice":
            text = " | ".join(map(str, self.choices))
        else:
            text = "see the family's registry"
        return text + (" or unset" if self.optional else "")


def _int(doc, lo=None, hi=None, **kw) -> Param:
    return Param("int", doc, lo=lo, hi=hi, **kw)


def _float(doc, lo=None, hi=None, lo_open=False, hi_open=False, **kw) -> Param:
    return Param("float", doc, lo=lo, hi=hi, lo_open=lo_open, hi_open=hi_open, **kw)


def _choice(doc, choices, **kw) -> Param:
    return Param("choice", doc, choices=tuple(choices), **kw)


#: What a model is trained on (:class:`~jointtask_lib.tasks.TaskConfig`; sweep YAML ``task:``,
#: except ``ops``/``weights`` (``grid.mixes``) and the size field (``grid.moduli``/``grid.perm_ks``)).
TASK: dict[str, Param] = {
    "ops": Param("ops", "the task mix: operations of the family's registry, e.g. ADD,MAX"),
    "family": Param("family", "the task family: listops (arithmetic mod n) or perm (products in S_k)"),
    "modulus": _int("modulus n of the listops family", 2, 200),
    "perm_k": _int("k of the perm family (products in S_k)", 2, 6),
    "weights": Param("weights", "mixture weights of the ops, comma-separated (default: equal), each > 0"),
    "depth": _int("maximum nesting depth", 1, 8),
    "min_args": _int("fewest arguments of a node", 1),
    "max_args": _int("most arguments of a node (>= min_args)", 1),
    "p_nest": _float("probability that an argument is nested", 0.0, 1.0),
    "cot": _choice("chain of thought: reduce (every step written) or none", COT_MODES),
    "mixing": _choice("expression (one op per example) or node (one per node)", MIXING_MODES),
    "relabel_seed": _int("seed of the SADD and RTAB tables", 0),
    "sampling": _choice("iid (every split follows the generator) or unique (distinct expressions)",
                        SAMPLING_MODES),
    "test_frac": _float("share of expressions held out for testing (iid)", 0.0, 1.0, lo_open=True, hi_open=True),
    "val_frac": _float("share held out for validation (iid)", 0.0, 1.0, lo_open=True, hi_open=True),
    "op_args": Param("op_args", "an arity per operation, e.g. MED=3 (MED nodes get 3 arguments, the "
                                "others keep min_args..max_args) or MED=2-4"),
}

#: The architecture (:class:`~jointtask_lib.train.Arch`; sweep YAML ``arch:``, width from
#: ``grid.widths``).  :class:`~jointtask_lib.model.ModelConfig` has these plus :data:`MODEL_SHAPE`.
ARCH: dict[str, Param] = {
    "n_embed": _int("model width (sweep files: grid.widths)", 2),
    "n_heads": _int("attention heads (must divide n_embed)", 1),
    "recurrence": _int("times the shared block stack is applied", 1),
    "n_layers": _int("distinct blocks per recurrence step", 1),
    "mlp_ratio": _int("MLP hidden width / n_embed", 1),
    "tie_weights": Param("bool", "share the token embedding with the output head"),
}

#: What the task fixes in a model (not set by users: the vocabulary and the context length).
MODEL_SHAPE: dict[str, Param] = {
    "vocab_size": _int("tokens in the vocabulary", 2, cli=None),
    "block_size": _int("longest sequence the position embedding covers", 2, cli=None),
}

#: The optimisation recipe (:class:`~jointtask_lib.train.TrainConfig`; sweep YAML ``train:``).
TRAIN: dict[str, Param] = {
    "steps": _int("training steps", 1),
    "batch_size": _int("examples per step", 1),
    "lr": _float("peak learning rate", 0.0, lo_open=True),
    "weight_decay": _float("AdamW weight decay", 0.0),
    "warmup": _int("linear warm-up steps", 0),
    "min_lr_frac": _float("final learning rate / lr (cosine decay)", 0.0, 1.0),
    "grad_clip": _float("gradient-norm clip per model (0: none)", 0.0),
    "beta1": _float("AdamW beta1", 0.0, 1.0, hi_open=True),
    "beta2": _float("AdamW beta2", 0.0, 1.0, hi_open=True),
    "loss_on": _choice("tokens the loss covers: after_eq (CoT and answer) or full", LOSS_ON),
    "n_train": _int("training examples (unset: the library default)", 1, MAX_EXAMPLES, optional=True),
    "n_test": _int("test examples (unset: the library default)", 0, MAX_EXAMPLES, optional=True),
    "data_seed": _int("seed of the data draw (unset: the run's seed)", 0, MAX_SEED, optional=True),
    "eval_every": _int("steps between validation evaluations", 1),
    "eval_size": _int("validation examples per evaluation", 1),
    "early_stop": Param("bool", "stop a model once it converged or stayed at chance", cli="--no-early-stop"),
    "converge_acc": _float("seq_acc at which a model has converged", 0.0, 1.0),
    "min_frac": _float("share of the budget before a model at chance may stop", 0.0, 1.0),
    "patience_frac": _float("share of the budget a model must stay at chance", 0.0, 1.0, lo_open=True),
    "chance_margin": _float("how close to chance counts as at chance", 0.0, 1.0),
    "step": _choice("the training step: fast (by hand) or reference (autograd)", STEPS),
}

#: The run itself (:class:`~jointtask_lib.train.RunSpec`; sweep YAML ``grid.seeds``).
RUN: dict[str, Param] = {
    "seed": _int("seed of the initialisation and batches (and of the data unless data_seed)", 0, MAX_SEED,
                 cli="--seeds"),
}

#: Paper B's prompts (:class:`~jointtask_lib.paper_b.icl_model.ICLConfig`; its backbone's fields
#: are :data:`ARCH`'s, under the same names).
ICL_PROMPT: dict[str, Param] = {
    "d": _int("input dimension of paper B's functions", 1, cli=None),
    "n_points": _int("in-context (x, f(x)) pairs per prompt", 1, cli=None),
}

#: Paper B's optimisation recipe (:class:`~jointtask_lib.paper_b.icl_train.ICLTrainConfig`; notebook
#: 09's parameters of the same names).  A field it shares with :data:`TRAIN` is the same quantity
#: under the same name and *is* TRAIN's declaration, except ``steps``: paper B's trainer needs at
#: least 3 (the block-end snapshots are taken at the ends of three thirds of the budget).
ICL_TRAIN: dict[str, Param] = {
    "steps": _int("training steps (at least 3: the snapshots split the budget in thirds)", 3, cli=None),
    "batch_size": TRAIN["batch_size"],
    "lr": TRAIN["lr"],
    "warmup": TRAIN["warmup"],
    "beta1": TRAIN["beta1"],
    "beta2": TRAIN["beta2"],
    "weight_decay": TRAIN["weight_decay"],
    "grad_clip": TRAIN["grad_clip"],
    "snapshot_prompts": _int("prompts per function class for the block-end snapshots (0: none)", 0, cli=None),
    "log_every": _int("bin width, in steps, of the loss curves stored in the record", 1, cli=None),
    "step": TRAIN["step"],
}

#: Paper B's sections (its field names may repeat paper A's: see :data:`ICL_TRAIN`); a notebook rule
#: names the section (:class:`jointtask_lib.notebook.FieldRule`'s ``section``).
PAPER_B_SECTIONS: dict[str, dict[str, Param]] = {"icl_prompt": ICL_PROMPT, "icl_train": ICL_TRAIN}

#: Every section, by the name a sweep file and a stored spec give it.
SECTIONS: dict[str, dict[str, Param]] = {"task": TASK, "arch": ARCH, "train": TRAIN, "run": RUN}

#: Grid lists of a sweep file: list name -> the field each item sets.
GRID_FIELDS: dict[str, str] = {"widths": "n_embed", "moduli": "modulus", "perm_ks": "perm_k",
                               "seeds": "seed"}


def param(name: str, section: str | None = None) -> Param:
    """The declaration of field ``name`` (names are unique across paper A's sections and
    :data:`ICL_PROMPT`); ``section`` (a key of :data:`SECTIONS` or :data:`PAPER_B_SECTIONS`) looks
    in that section only (paper B's recipe repeats paper A's names)."""
    if section is not None:
        return (SECTIONS | PAPER_B_SECTIONS)[section][name]
    for section in (*SECTIONS.values(), MODEL_SHAPE, ICL_PROMPT):
        if name in section:
            return section[name]
    raise KeyError(name)


def check_fields(obj, section: Mapping[str, Param], names: Iterable[str] | None = None) -> None:
    """Validate the fields ``names`` (default: every field of ``section``) of ``obj`` (a dataclass
    instance or a mapping) against their declarations; a missing mapping entry is skipped."""
    for name in section if names is None else names:
        p = section[name]
        if isinstance(obj, Mapping):
            if name not in obj:
                continue
            value = obj[name]
        else:
            value = getattr(obj, name)
        p.check(name, value)


def check_heads(n_embed: int, n_heads: int) -> None:
    """The one rule between two architecture fields: ``n_heads`` divides ``n_embed``."""
    if n_embed % n_heads:
        divisors = [h for h in range(1, n_embed + 1) if n_embed % h == 0]
        raise ValueError(f"'{shown('n_heads')}' must divide '{shown('n_embed')}' = {n_embed} "
                         f"(allowed: {divisors}); got {n_heads}")


def sweep_paths(mix: int | None = None, own_widths: bool = False, own_seeds: bool = False) -> dict[str, str]:
    """Field name -> its YAML path in a sweep file, for the runs of ``grid.mixes[mix]``
    (``own_widths``/``own_seeds``: that mix gives its own list)."""
    paths = {name: f"{sec}.{name}" for sec, fields in SECTIONS.items() if sec != "run" for name in fields}
    paths |= {field: f"grid.{key}" for key, field in GRID_FIELDS.items()}
    if mix is not None:
        paths |= {"ops": f"grid.mixes[{mix}]", "weights": f"grid.mixes[{mix}].weights"}
        if own_widths:
            paths["n_embed"] = f"grid.mixes[{mix}].widths"
        if own_seeds:
            paths["seed"] = f"grid.mixes[{mix}].seeds"
    return paths
