"""Figures and interactive explorers for the analysis notebooks (06 embeddings, 07 sublayers,
08 output structure).

Every ``plot_*`` function returns a :class:`matplotlib.figure.Figure` built without pyplot (safe
headless, never leaks figures).  The two explorers (:func:`embedding_explorer`,
:func:`cot_explorer`) return ipywidgets containers; notebooks show them only when their
``interactive`` parameter is true, never under papermill/CI.  :func:`trace_expression` is the
computation behind the chain-of-thought explorer: greedy decoding of one expression, then one
instrumented forward pass that records every recurrence step's attention pattern.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.ticker import NullLocator

from ..data import Vocab
from ..model import GPT, Probe
from ..train import generate
from .embeddings import COLOR_MODES, plot_cosine_and_pca
from .sublayers import KINDS

__all__ = [
    "plot_embedding_grid", "plot_scores", "plot_scores_vs_width", "plot_sublayer_ratios", "plot_ablation_drops",
    "trace_expression", "plot_attention_trace", "plot_entropy_vs_transition", "plot_structure_profiles",
    "plot_synergy_vs_reduction",
    "embedding_explorer", "cot_explorer",
]


# ---------------------------------------------------------------------------------------------
# Notebook 06: embeddings
# ---------------------------------------------------------------------------------------------


def plot_embedding_grid(embeddings: Mapping[str, np.ndarray], n: int, *, color_by: str = "parity",
                        residue_mod: int | None = None, title: str = "") -> Figure:
    """One row per label: the cosine-similarity matrix and the cosine-PCA picture of its value
    embeddings ``[n, d]`` (:func:`~jointtask_lib.analysis.embeddings.plot_cosine_and_pca`)."""
    if not embeddings:
        raise ValueError("'embeddings' must hold at least one labelled [n, d] matrix")
    labels = list(embeddings)
    fig = Figure(figsize=(10.5, 4.2 * len(labels)), layout="constrained")
    axes = fig.subplots(len(labels), 2, squeeze=False)
    for row, label in zip(axes, labels):
        plot_cosine_and_pca(embeddings[label], n, color_by=color_by, residue_mod=residue_mod, ax=row)
        row[0].set_title(f"{label}: cosine similarity", fontsize=10)
        row[1].set_title(f"{label}: PCA of cosine rows ({color_by})", fontsize=10)
    if title:
        fig.suptitle(title, fontsize=11)
    return fig


def plot_scores(scores: Mapping[str, Mapping[str, tuple[float, float, float]]],
                null: Mapping[str, tuple[float, float]] | None = None, *, title: str = "") -> Figure:
    """Grouped bars: ``scores[condition][score] = (mean, lo, hi)`` with CI whiskers; the random-
    embedding null of each score (``null[score] = (mean, q95)``) drawn as a grey band."""
    conds = list(scores)
    if not conds:
        raise ValueError("'scores' must hold at least one condition")
    names = list(next(iter(scores.values())))
    fig = Figure(figsize=(1.6 + 1.3 * len(names) * max(1, len(conds)) / 2, 3.6), layout="constrained")
    ax = fig.subplots()
    width = 0.8 / len(conds)
    x = np.arange(len(names))
    for i, c in enumerate(conds):
        m = np.array([scores[c][s][0] for s in names])
        lo = np.array([scores[c][s][1] for s in names])
        hi = np.array([scores[c][s][2] for s in names])
        ax.bar(x + (i - (len(conds) - 1) / 2) * width, m, width * 0.95, label=c, color=f"C{i}",
               yerr=np.vstack([m - lo, hi - m]), capsize=3)
    if null:
        for j, s in enumerate(names):
            if s in null:
                mu, q95 = null[s]
                ax.fill_between([j - 0.45, j + 0.45], [mu, mu], [q95, q95], color="0.6", alpha=0.35, lw=0, zorder=0,
                                label="random embeddings (mean..95%)" if j == 0 else None)
    ax.axhline(0, color="k", lw=0.6)
    ax.set_xticks(x, names)
    ax.set_ylabel("separation score")
    ax.set_title(title or "Embedding structure (mean over seeds, 95% bootstrap CI)", fontsize=10)
    ax.legend(fontsize=8, loc="best")
    ax.grid(axis="y", alpha=0.3)
    return fig


def plot_scores_vs_width(values: Mapping[str, Mapping[int, Sequence[float]]], *, score: str = "parity",
                         null: tuple[float, float] | None = None, title: str = "") -> Figure:
    """One line per task mix: mean ``score`` over seeds against width, with the 95% Student-t CI
    over seeds as error bars (seeds as dots); a labelled tick at every trained width; the legend
    outside the axes."""
    from scipy import stats

    fig = Figure(figsize=(7.4, 3.6), layout="constrained")
    ax = fig.subplots()
    all_w: set = set()
    for i, (label, by_w) in enumerate(values.items()):
        ws = sorted(by_w)
        all_w |= set(ws)
        means, errs = [], []
        for w in ws:
            v = np.asarray(by_w[w], float)
            means.append(float(v.mean()))
            errs.append(float(stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else 0.0)
        ax.plot(ws, means, "-o", color=f"C{i}", label=label, ms=4, lw=1.0)
        ax.errorbar(ws, means, yerr=errs, fmt="none", ecolor=f"C{i}", capsize=0, lw=1.5, alpha=0.7)
        for w in ws:
            ax.plot([w] * len(by_w[w]), by_w[w], ".", color=f"C{i}", alpha=0.4)
    if null is not None:
        ax.axhspan(null[0], null[1], color="0.6", alpha=0.3, lw=0, label="random (mean..95%)")
    ax.set_xscale("log", base=2)
    ax.xaxis.set_minor_locator(NullLocator())
    if all_w:
        ax.set_xticks(sorted(all_w), [str(w) for w in sorted(all_w)])
    ax.set_xlabel("width (n_embed)")
    ax.set_ylabel(f"{score} score")
    ax.set_title(title or f"{score} score of the number embeddings by width (mean, 95% CI over seeds)", fontsize=10)
    fig.legend(loc="outside right upper", fontsize=7)
    ax.grid(alpha=0.3)
    return fig


# ---------------------------------------------------------------------------------------------
# Notebook 07: sublayers
# ---------------------------------------------------------------------------------------------


def plot_sublayer_ratios(ratios: Mapping[str, np.ndarray], *, title: str = "") -> Figure:
    """Norm ratio ``||out|| / ||in||`` per recurrence step, attention and FFN side by side; one
    line per condition (mean over seeds), seeds as faint lines.  ``ratios[label]`` is
    ``[seeds, steps, layers, 2]`` (:func:`~jointtask_lib.analysis.sublayers.sublayer_ratios`);
    layers are averaged."""
    fig = Figure(figsize=(9, 3.4), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    for j, (ax, kind) in enumerate(zip(axes, ("attention", "FFN"))):
        for i, (label, r) in enumerate(ratios.items()):
            r = np.asarray(r, float)[..., j].mean(-1)  # [seeds, steps]
            steps = np.arange(1, r.shape[1] + 1)
            for row in r:
                ax.plot(steps, row, color=f"C{i}", alpha=0.25, lw=0.8)
            ax.plot(steps, r.mean(0), "-o", color=f"C{i}", label=label, ms=4)
        ax.set_title(f"{kind}: output norm / input norm", fontsize=10)
        ax.set_xlabel("recurrence step")
        ax.set_xticks(steps)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("ratio (mean over scored positions)")
    axes[0].legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=11)
    return fig


def plot_ablation_drops(drops: Mapping[str, Mapping[str, np.ndarray]], *, metric: str = "accuracy",
                        title: str = "") -> Figure:
    """Accuracy drop when one sublayer is zeroed at one step: ``drops[label][kind]`` is
    ``[seeds, steps]`` (:func:`~jointtask_lib.analysis.sublayers.drops_by_step`).  Bars: mean
    over seeds; dots: seeds."""
    labels = list(drops)
    fig = Figure(figsize=(9, 3.4), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    for ax, kind, name in zip(axes, KINDS, ("attention", "FFN")):
        width = 0.8 / max(1, len(labels))
        for i, label in enumerate(labels):
            d = np.asarray(drops[label][kind], float)
            steps = np.arange(1, d.shape[1] + 1)
            xs = steps + (i - (len(labels) - 1) / 2) * width
            ax.bar(xs, d.mean(0), width * 0.95, color=f"C{i}", label=label)
            for row in d:
                ax.plot(xs, row, ".", color="k", ms=3)
        ax.axhline(0, color="k", lw=0.6)
        ax.set_xticks(steps)
        ax.set_xlabel("recurrence step ablated")
        ax.set_title(f"{name} zeroed at one step", fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel(f"drop in {metric}")
    axes[0].legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=11)
    return fig


@torch.no_grad()
def trace_expression(model: GPT, vocab: Vocab, prompt: str | Sequence[int], max_len: int, *,
                     index: int = 0) -> dict:
    """Step model ``index`` of a stack through one expression.

    ``prompt`` is the expression up to and including the first ``=`` (text or token ids).  The
    model decodes greedily until ``e`` (its own chain of thought); then one forward pass over the
    whole generated sequence records the attention pattern of every recurrence step.  Returns
    ``{"tokens": [str], "prompt_len": int, "text": str, "attn": [steps, T, T] array (layer 0,
    head-averaged)}``; ``attn[s, i, j]`` is how much position ``i`` attends to ``j`` at step ``s``.
    """
    ids = vocab.encode(prompt) if isinstance(prompt, str) else [int(t) for t in prompt]
    if vocab.eq_id not in ids:
        raise ValueError("'prompt' must end with the first '=' of the expression")
    ids = ids[: ids.index(vocab.eq_id) + 1]
    device = next(model.parameters()).device
    m = model.n_models
    if not 0 <= index < m:
        raise ValueError(f"'index' must be in 0..{m - 1}; got {index}")
    toks = torch.tensor(ids, device=device).view(1, 1, -1).expand(m, 1, -1).contiguous()
    batch = {"tokens": toks, "prompt_len": torch.full((m, 1), len(ids), device=device)}
    out = generate(model, batch, vocab, max_len)[index, 0].tolist()
    end = next((i for i in range(len(ids), len(out)) if out[i] == vocab.end_id), None)
    seq = [t for t in out[: (end + 1) if end is not None else len(out)] if t != vocab.pad_id]
    probe = Probe(attention=True)
    x = torch.tensor(seq, device=device).view(1, 1, -1).expand(m, 1, -1).contiguous()
    model(x, probe)
    steps = sorted({s for s, _ in probe.attn})
    attn = np.stack([probe.attn[(s, 0)][index, 0].mean(0).cpu().numpy() for s in steps])
    tokens = [vocab.tokens[t] for t in seq]
    return {"tokens": tokens, "prompt_len": len(ids), "text": " ".join(tokens), "attn": attn}


def plot_attention_trace(trace: Mapping, steps: Sequence[int] | None = None, *, title: str = "") -> Figure:
    """Attention heatmaps (query rows, key columns) of the given recurrence steps (default all)
    for a :func:`trace_expression` result; the first ``=`` is marked by dashed lines."""
    attn = np.asarray(trace["attn"])
    steps = list(range(attn.shape[0])) if steps is None else [int(s) for s in steps]
    toks = list(trace["tokens"])
    t = len(toks)
    side = 0.17 * t + 1.2
    fig = Figure(figsize=(side * len(steps) + 0.6, side + 0.6), layout="constrained")
    axes = fig.subplots(1, len(steps), squeeze=False)[0]
    for ax, s in zip(axes, steps):
        ax.imshow(attn[s], cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
        ax.set_xticks(range(t), toks, fontsize=6, rotation=90)
        ax.set_yticks(range(t), toks, fontsize=6)
        p = trace["prompt_len"] - 0.5
        ax.axvline(p, color="C3", lw=0.8, ls="--")
        ax.axhline(p, color="C3", lw=0.8, ls="--")
        ax.set_title(f"step {s + 1}", fontsize=9)
        ax.set_xlabel("attended position (key)", fontsize=7)
    axes[0].set_ylabel("position writing (query)", fontsize=7)
    fig.suptitle(title or trace["text"], fontsize=9)
    return fig


# ---------------------------------------------------------------------------------------------
# Notebook 08: output structure and synergy
# ---------------------------------------------------------------------------------------------


def _point(ax, x, y, kind: str, color, label=None):
    marker = {"estimate": "o", "above": "^", "below": "v"}.get(kind, "x")
    ax.plot([x], [y], marker, color=color, ms=8, label=label, mec="k", mew=0.5)


def plot_entropy_vs_transition(rows: Sequence[Mapping], *, title: str = "") -> Figure:
    """Normalised output entropy (x) against the single-task transition in parameters (y, log).
    ``rows``: ``{"op", "norm_entropy", "transition", "kind"}`` with ``kind`` ``estimate``,
    ``above`` (drawn as ^: a lower bound) or ``below`` (v: an upper bound)."""
    fig = Figure(figsize=(5.6, 3.8), layout="constrained")
    ax = fig.subplots()
    for i, r in enumerate(rows):
        if r.get("transition") is None:
            continue
        _point(ax, r["norm_entropy"], r["transition"], r["kind"], f"C{i % 10}")
        ax.annotate(r["op"], (r["norm_entropy"], r["transition"]), textcoords="offset points", xytext=(6, 4),
                    fontsize=8)
    ax.set_yscale("log")
    ax.set_xlabel("output entropy / log2(n)  (1 = uniform)")
    ax.set_ylabel("single-task transition (parameters)")
    ax.set_title(title or "Output distribution vs learning transition (^: lower bound, v: upper bound)",
                 fontsize=9)
    ax.grid(alpha=0.3)
    return fig


def plot_structure_profiles(profiles: Mapping[str, Mapping[str, float]], *, title: str = "") -> Figure:
    """Heatmap of operations' structure profiles: ``profiles[op][feature]`` is the excess closure
    (:func:`jointtask_lib.analysis.synergy.structure_profile`), 0 = no more than a random table,
    1 = the feature is a congruence of the operation."""
    ops = list(profiles)
    if not ops:
        raise ValueError("'profiles' must hold at least one operation")
    feats = list(next(iter(profiles.values())))
    M = np.array([[profiles[o][f] for f in feats] for o in ops])
    fig = Figure(figsize=(1.2 + 0.42 * len(feats), 0.9 + 0.38 * len(ops)), layout="constrained")
    ax = fig.subplots()
    im = ax.imshow(M, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto", interpolation="nearest")
    ax.set_xticks(range(len(feats)), feats, rotation=90, fontsize=7)
    ax.set_yticks(range(len(ops)), ops, fontsize=8)
    for i in range(len(ops)):
        for j in range(len(feats)):
            ax.text(j, i, f"{M[i, j]:.1f}", ha="center", va="center", fontsize=6,
                    color="w" if M[i, j] < 0.5 else "k")
    fig.colorbar(im, ax=ax, label="excess closure", shrink=0.8)
    ax.set_title(title or "Which value features does each operation respect?", fontsize=10)
    return fig


def plot_synergy_vs_reduction(rows: Sequence[Mapping], *, score: str = "synergy", title: str = "") -> Figure:
    """A priori ``score`` (x) against the measured reduction factor (y, log): ``rows`` with
    ``"label"``, ``score``, ``"reduction"`` and ``"kind"`` (as in :func:`plot_entropy_vs_transition`)."""
    fig = Figure(figsize=(5.8, 3.9), layout="constrained")
    ax = fig.subplots()
    for i, r in enumerate(rows):
        if r.get("reduction") is None:
            continue
        _point(ax, r[score], r["reduction"], r["kind"], f"C{i % 10}")
        ax.annotate(r["label"], (r[score], r["reduction"]), textcoords="offset points", xytext=(6, 4), fontsize=7)
    ax.axhline(1.0, color="0.4", lw=0.8, ls="--")
    ax.set_yscale("log")
    ax.set_xlabel(f"a priori {score} score")
    ax.set_ylabel("measured reduction factor")
    ax.set_title(title or "Predicted synergy vs measured reduction (^: lower bound, v: upper bound)", fontsize=9)
    ax.grid(alpha=0.3)
    return fig


# ---------------------------------------------------------------------------------------------
# Interactive explorers (ipywidgets; only built when a notebook's `interactive` is true)
# ---------------------------------------------------------------------------------------------


def _show(out, fig: Figure) -> None:
    from IPython.display import Image, clear_output, display

    from ..plots import figure_png

    with out:
        clear_output(wait=True)
        display(Image(data=figure_png(fig)))


def embedding_explorer(embeddings: Mapping[str, np.ndarray], n: int):
    """A widget: pick a run (``embeddings[label]`` is its ``[n, d]`` value embedding) and a
    colouring (value, parity, residue mod q) for the cosine matrix and PCA picture.

    The returned box's ``state`` dict holds what is shown now: ``"figure"`` (the Figure),
    ``"run"``, ``"color_by"``, ``"residue_mod"`` (so the view can be inspected headless)."""
    import ipywidgets as w

    if not embeddings:
        raise ValueError("'embeddings' must hold at least one run")
    run = w.Dropdown(options=list(embeddings), description="run")
    color = w.ToggleButtons(options=list(COLOR_MODES), value="value", description="colour")
    mod = w.BoundedIntText(value=min(5, n), min=2, max=n, description="residue mod")
    out = w.Output()
    box = w.VBox([w.HBox([run, color, mod]), out])
    box.state = {}

    def update(*_):
        rmod = mod.value if color.value == "residue" else None
        fig = plot_cosine_and_pca(embeddings[run.value], n, color_by=color.value, residue_mod=rmod)
        box.state.update(figure=fig, run=run.value, color_by=color.value, residue_mod=rmod)
        _show(out, fig)

    for c in (run, color, mod):
        c.observe(update, names="value")
    update()
    return box


def cot_explorer(models: Mapping[str, tuple[GPT, int]], vocab: Vocab, prompts: Sequence[str], max_len: int):
    """A widget: pick a model (``models[label] = (stacked model, index in the stack)``), an
    expression from ``prompts`` (texts ending with the first ``=``) or type one, and a recurrence
    step; shows the model's own chain of thought and that step's attention pattern.

    The returned box's ``state`` dict holds what is shown now: ``"trace"`` (the
    :func:`trace_expression` result), ``"figure"``, ``"model"``, ``"step"`` (or ``"error"`` when the
    typed expression cannot be run)."""
    import ipywidgets as w

    if not models or not prompts:
        raise ValueError("'models' and 'prompts' must be non-empty")
    pick = w.Dropdown(options=list(models), description="model")
    expr = w.Combobox(options=list(prompts), value=prompts[0], description="expression",
                      layout=w.Layout(width="60%"), ensure_option=False)
    first = next(iter(models.values()))[0]
    step = w.IntSlider(value=0, min=0, max=first.cfg.recurrence - 1, description="step (0-based)")
    text = w.HTML()
    out = w.Output()
    box = w.VBox([w.HBox([pick, step]), expr, text, out])
    box.state = {}

    def update(*_):
        model, idx = models[pick.value]
        try:
            tr = trace_expression(model, vocab, expr.value.strip(), max_len, index=idx)
        except ValueError as exc:
            text.value = f"<b>cannot run:</b> {exc}"
            box.state.update(error=str(exc))
            return
        text.value = f"<code>{tr['text']}</code>"
        fig = plot_attention_trace(tr, [step.value])
        box.state.update(trace=tr, figure=fig, model=pick.value, step=step.value, error=None)
        _show(out, fig)

    for c in (pick, expr, step):
        c.observe(update, names="value")
    update()
    return box
