"""Vocabulary, encoding and train/validation/test datasets as tensors.

One vocabulary per task family and size (modulus n, or k for S_k), shared by *all* operations of
the family: ``<pad> ( ) = e``, then the value tokens, then every op token of the registry.  Models
trained on different task mixes therefore share token ids and can be transferred to one another.

How a dataset is drawn (``TaskConfig.sampling``)
------------------------------------------------
``"iid"`` (default).  The *expressions* are split first, by a seeded hash
(:func:`~jointtask_lib.tasks.core.split_u`): an expression is a test expression when its hash
value is below ``test_frac``, a validation expression when it is in the next ``val_frac``, a
training expression otherwise.  Each split is then ``n`` independent draws from the expression
generator restricted to its part (:func:`~jointtask_lib.tasks.core.sample_iid`).  So

* no expression is in two splits (disjoint at the expression level, by construction);
* every split follows the generator's distribution (same mix of depths and ops), however small
  the support: with 2-argument depth-2 ADD mod 10 there are only 12,100 distinct expressions and
  100 of them are flat (``( ADD 3 4 )``), yet the generator makes a quarter of its draws flat, and
  so do the training and the test set;
* a split may repeat an expression (frequent expressions appear as often as the generator makes
  them), which is what an accuracy "on new expressions from the task" should weigh;
* the split of an expression depends only on the expression and the seed, not on the task mix or
  the sizes: a test expression of an ``ADD`` model is also a test expression of an
  ``ADD+MAX+MED`` model with the same seed.

``"unique"``.  Distinct expressions: the test set is drawn first, the training set from a second
stream with every test expression excluded; the validation set is the start of the test set.  When
the support is small enough to enumerate (``ENUMERATE_LIMIT``), both are drawn uniformly from
it, otherwise from the generator with duplicates rejected — so they share one distribution, but
a uniform one is *not* the generator's (short expressions are rare in the support); use ``"iid"``
to train and test on the generator's distribution.  Asking for more distinct expressions than
exist raises ``ValueError``.

Both are deterministic functions of ``(task, n_train, n_test, seed)``.  Default sizes grow
linearly with the number of values (paper A scales its data linearly with n).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import torch

from .tasks import (SPECIAL_TOKENS, TaskConfig, count_expressions, evaluate, example_tokens,
                    sample_iid, sample_unique, split_u)
from .tasks.core import ENUMERATE_LIMIT, Expr, ops_in
from .validate import MAX_EXAMPLES, MAX_SEED, check_int

TRAIN_PER_VALUE = 2000
TEST_PER_VALUE = 100
MIN_TEST = 1000

PAD, OPEN, CLOSE, EQ, END = SPECIAL_TOKENS


class Vocab:
    """Token <-> id mapping for one task family and size."""

    def __init__(self, tokens: list[str]):
        self.tokens = list(tokens)
        self.stoi = {t: i for i, t in enumerate(self.tokens)}
        if len(self.stoi) != len(self.tokens):
            raise ValueError("vocabulary tokens must be unique")
        self.pad_id = self.stoi[PAD]
        self.eq_id = self.stoi[EQ]
        self.end_id = self.stoi[END]

    @classmethod
    def for_task(cls, task: TaskConfig) -> "Vocab":
        d = task.domain()
        return cls(list(SPECIAL_TOKENS) + list(d.value_tokens) + list(task.task_family.ops))

    def __len__(self) -> int:
        return len(self.tokens)

    def __eq__(self, other) -> bool:
        return isinstance(other, Vocab) and self.tokens == other.tokens

    def value_ids(self, task: TaskConfig) -> list[int]:
        return [self.stoi[t] for t in task.domain().value_tokens]

    def encode(self, text: str | list[str]) -> list[int]:
        toks = text.split(" ") if isinstance(text, str) else text
        try:
            return [self.stoi[t] for t in toks]
        except KeyError as exc:
            raise ValueError(
                f"'text' contains the token {exc.args[0]!r}, which is not in the vocabulary "
                f"({' '.join(self.tokens)})"
            ) from None

    def decode(self, ids, strip_pad: bool = True) -> str:
        ids = ids.tolist() if hasattr(ids, "tolist") else list(ids)
        return " ".join(self.tokens[i] for i in ids if not (strip_pad and i == self.pad_id))

    def pad_batch(self, seqs: list[list[int]], length: int | None = None) -> torch.Tensor:
        """Right-pad integer sequences with ``<pad>`` into a ``[N, T]`` int64 tensor."""
        t = max((len(s) for s in seqs), default=0) if length is None else length
        out = np.full((len(seqs), t), self.pad_id, dtype=np.int64)
        for i, s in enumerate(seqs):
            if len(s) > t:
                raise ValueError(f"'length' = {t} is shorter than a sequence of length {len(s)}")
            out[i, : len(s)] = s
        return torch.from_numpy(out)


@dataclass
class TaskData:
    """One split as tensors.

    ``tokens[i, :lengths[i]]`` is example i (expression, CoT, answer, ``e``), padded with
    ``<pad>``.  ``prompt_len[i]`` counts the tokens up to and including the first ``=`` (what a
    model is given when it must generate its own CoT).  ``answer[i]`` is the token id of the final
    answer, ``task_id[i]`` the index in ``task.ops`` of the example's operation (``-1`` when ops
    are mixed within an expression).
    """

    task: TaskConfig
    vocab: Vocab
    tokens: torch.Tensor
    lengths: torch.Tensor
    prompt_len: torch.Tensor
    answer: torch.Tensor
    task_id: torch.Tensor
    exprs: list

    def __len__(self) -> int:
        return self.tokens.shape[0]

    def texts(self, idx=None) -> list[str]:
        rows = range(len(self)) if idx is None else idx
        return [self.vocab.decode(self.tokens[i, : self.lengths[i]]) for i in rows]


def max_example_length(task: TaskConfig) -> int:
    """Length in tokens of the longest example the task can produce (the models' context size).

    The longest example is the full tree (every node has the most arguments any node may have:
    ``max_args`` or a larger ``op_args`` entry, every argument above the last level nested): each
    of its CoT steps is the full tree one level shallower, which no other tree's step exceeds.  It
    depends on the syntax only (``op_args`` entries of ops outside the mix included), so every mix
    of a family with the same settings shares it.
    """
    dom = task.domain()
    op = task.ops[0]
    leaf = dom.operands(op)[0]
    k = task.spec().longest_arity()

    def full(level: int):
        nested = level < task.depth and task.p_nest > 0
        return (op, tuple(full(level + 1) if nested else leaf for _ in range(k)))

    return len(example_tokens(full(1), dom, task.cot))


def default_sizes(task: TaskConfig) -> tuple[int, int]:
    """(n_train, n_test) growing linearly with the number of values.

    With ``sampling="unique"`` they are clipped to the support: the test set takes at most a fifth
    of it and training the rest.
    """
    nv = task.n_values
    n_test = max(MIN_TEST, TEST_PER_VALUE * nv)
    n_train = TRAIN_PER_VALUE * nv
    if task.sampling == "unique":
        support = count_expressions(task.spec(), task.domain())
        n_test = min(n_test, support // 5)
        n_train = min(n_train, support - n_test)
    return int(n_train), int(n_test)


def _split_of(task: TaskConfig, seed: int):
    """The three parts of the expression space for ``seed``: predicates ``test``, ``val``, ``train``."""
    t, v = task.test_frac, task.test_frac + task.val_frac
    return (lambda e: split_u(e, seed) < t,
            lambda e: t <= split_u(e, seed) < v,
            lambda e: split_u(e, seed) >= v)


def encode_exprs(task: TaskConfig, vocab: Vocab, exprs: list[Expr]) -> TaskData:
    """Turn expressions into a :class:`TaskData` (tokens, prompt lengths, answers, task ids)."""
    dom = task.domain()
    stoi = vocab.stoi
    op_index = {op: i for i, op in enumerate(task.ops)}
    seqs, plen, ans, tid = [], [], [], []
    for e in exprs:
        ids = [stoi[t] for t in example_tokens(e, dom, task.cot)]
        seqs.append(ids)
        plen.append(ids.index(vocab.eq_id) + 1)
        ans.append(stoi[dom.value_tokens[evaluate(e, dom)]])
        tid.append(op_index[e[0]] if task.mixing == "expression" else -1)
    tokens = vocab.pad_batch(seqs)
    return TaskData(
        task=task,
        vocab=vocab,
        tokens=tokens,
        lengths=torch.tensor([len(s) for s in seqs], dtype=torch.int64),
        prompt_len=torch.tensor(plen, dtype=torch.int64),
        answer=torch.tensor(ans, dtype=torch.int64),
        task_id=torch.tensor(tid, dtype=torch.int64),
        exprs=exprs,
    )


_CACHE: "OrderedDict[tuple, tuple[TaskData, TaskData]]" = OrderedDict()
_CACHE_SIZE = 16


def make_datasets(
    task: TaskConfig,
    n_train: int | None = None,
    n_test: int | None = None,
    seed: int = 0,
) -> tuple[TaskData, TaskData]:
    """Disjoint (train, test) splits; deterministic in ``(task, n_train, n_test, seed)``.

    ``None`` sizes take :func:`default_sizes`; see the module docstring for how the splits are
    drawn.  Results are memoised in-process (a sweep reuses them).
    """
    d_train, d_test = default_sizes(task)
    n_train = d_train if n_train is None else check_int("n_train", n_train, lo=0, hi=MAX_EXAMPLES)
    n_test = d_test if n_test is None else check_int("n_test", n_test, lo=0, hi=MAX_EXAMPLES)
    check_int("seed", seed, lo=0, hi=MAX_SEED)
    key = (task, n_train, n_test, seed)
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    spec, dom = task.spec(), task.domain()
    if task.sampling == "iid":
        is_test, _, is_train = _split_of(task, seed)
        test_exprs = sample_iid(spec, dom, n_test, np.random.default_rng([seed, 1]), is_test, "n_test")
        train_exprs = sample_iid(spec, dom, n_train, np.random.default_rng([seed, 0]), is_train, "n_train")
    else:
        # One method for both splits (so they follow one distribution): uniform over the
        # enumerated support when it is small enough to enumerate, the generator otherwise.
        enum = count_expressions(spec, dom) <= ENUMERATE_LIMIT
        test_exprs = sample_unique(spec, dom, n_test, np.random.default_rng([seed, 1]), enumerate_support=enum)
        # The training stream excludes every test expression: splits are disjoint by construction.
        train_exprs = sample_unique(spec, dom, n_train, np.random.default_rng([seed, 0]),
                                    exclude=set(test_exprs), enumerate_support=enum)
    vocab = Vocab.for_task(task)
    out = (encode_exprs(task, vocab, train_exprs), encode_exprs(task, vocab, test_exprs))
    _CACHE[key] = out
    if len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return out


def make_validation(task: TaskConfig, n: int, seed: int = 0, n_test: int | None = None) -> TaskData:
    """``n`` validation examples (what early stopping and the training curves look at).

    With ``sampling="iid"``: draws from the validation part of the expression space, disjoint
    from both the training and the test expressions, so stopping decisions never see the test
    set.  With ``sampling="unique"``: the first ``n`` test examples (``n_test`` as for
    :func:`make_datasets`), as there is no third part.
    """
    check_int("n", n, lo=1)
    if task.sampling == "unique":
        test = make_datasets(task, 0, n_test, seed)[1]
        return encode_exprs(task, test.vocab, test.exprs[:n])
    _, is_val, _ = _split_of(task, seed)
    exprs = sample_iid(task.spec(), task.domain(), n, np.random.default_rng([seed, 2]), is_val, "eval_size")
    return encode_exprs(task, Vocab.for_task(task), exprs)


def example_record(task: TaskConfig, expr: Expr, split: str) -> dict:
    """A JSON-able description of one example (the CLI's ``--format jsonl`` line)."""
    dom = task.domain()
    toks = example_tokens(expr, dom, task.cot)
    rec = {
        "text": " ".join(toks),
        "answer": dom.value_tokens[evaluate(expr, dom)],
        "ops": sorted(ops_in(expr)),
        "family": task.family,
        "split": split,
    }
    rec[task.task_family.size_field] = task.size
    return rec
