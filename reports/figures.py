"""The report's figures: matplotlib (Agg, object API, no pyplot state) rendered to inline SVG data URIs.

Every figure reads numbers that are already computed — accuracy and its CI, format rates, flips and subgroup
accuracy come from metrics.json rows — except the two per-sample views (reasoning-length distributions and
accuracy against reasoning length), which read the samples table directly. Nothing here computes a CI.

Each builder returns ``None`` when the run has nothing to show (e.g. no task with subgroups → no heatmap), so
the report can say why a figure is missing instead of drawing an empty axis.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

#: Okabe–Ito palette: distinguishable with the common colour-vision deficiencies. Checkpoint i gets colour i
#: everywhere (table swatches, every figure), so a colour always means the same checkpoint.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
FORMAT_COLOURS = {"strict": "#1b6e5a", "soft only": "#7cc4ae", "none": "#e3a59a"}
FIXED_COLOUR, BROKEN_COLOUR = "#1a7f37", "#cf222e"

_RC = {
    "svg.fonttype": "none",  # text stays text: smaller files, selectable labels
    "svg.hashsalt": "medbench",  # deterministic element ids → reproducible reports
    "text.parse_math": False,  # a "$" in a task or specialty name is text, not mathtext
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#e6e6e6",
    "grid.linewidth": 0.6,
    "axes.axisbelow": True,
    "legend.frameon": False,
}


@dataclass(frozen=True)
class FigureSpec:
    """One rendered figure: an anchor id, a title, a caption that says how to read it, and the image."""

    id: str
    title: str
    caption: str
    data_uri: str
    alt: str


def checkpoint_colour(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _to_data_uri(fig: Any) -> str:
    import matplotlib

    buf = io.BytesIO()
    with matplotlib.rc_context(_RC):
        fig.savefig(buf, format="svg", metadata={"Date": None})
    return "data:image/svg+xml;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _panels(fig: Any, n: int, *, sharey: bool = True) -> list[Any]:
    cols = min(n, 4)
    rows = math.ceil(n / cols)
    axes = fig.subplots(rows, cols, sharey=sharey, squeeze=False).ravel().tolist()
    for ax in axes[n:]:
        ax.set_visible(False)
    return axes[:n]


def _rc():
    import matplotlib

    return matplotlib.rc_context(_RC)


def accuracy_figure(
    rows: Sequence[dict[str, Any]], checkpoints: Sequence[str], tasks: Sequence[str]
) -> FigureSpec | None:
    """Accuracy with its 95% CI per task (groups) and checkpoint (colours), from metrics.json rows."""
    by = {(r["checkpoint"], r["task"]): r for r in rows}
    if not any(_finite(r.get("accuracy")) for r in rows):
        return None
    with _rc():
        fig = _figure(max(4.5, 1.0 * len(tasks) * max(1, len(checkpoints)) ** 0.5 + 1.5), 3.2)
        ax = fig.subplots()
        k = len(checkpoints)
        width = 0.8 / max(k, 1)
        for ci, ck in enumerate(checkpoints):
            xs, ys, lo, hi = [], [], [], []
            for ti, task in enumerate(tasks):
                r = by.get((ck, task))
                if not r or not _finite(r.get("accuracy")):
                    continue
                acc = r["accuracy"] * 100
                low = r.get("accuracy_ci_low")
                high = r.get("accuracy_ci_high")
                xs.append(ti - 0.4 + width * (ci + 0.5))
                ys.append(acc)
                lo.append(acc - low * 100 if _finite(low) else 0.0)
                hi.append(high * 100 - acc if _finite(high) else 0.0)
            ax.errorbar(xs, ys, yerr=[lo, hi], fmt="o", ms=5, capsize=3, lw=1.4,
                        color=checkpoint_colour(ci), label=ck)
        ax.set_xticks(range(len(tasks)), list(tasks))
        ax.set_xlim(-0.6, len(tasks) - 0.4)
        ax.set_ylim(0, 100)
        ax.set_ylabel("accuracy (%)")
        ax.grid(axis="x", visible=False)
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), title="checkpoint")
        uri = _to_data_uri(fig)
    return FigureSpec(
        "fig-accuracy", "Accuracy per task",
        "Dots are accuracy; bars are the 95% confidence interval from metrics.json. Overlapping bars do not by "
        "themselves mean \"no difference\": the paired test in the summary table is the one to trust.",
        uri, "accuracy with 95% confidence intervals per task and checkpoint",
    )


def format_figure(
    rows: Sequence[dict[str, Any]], checkpoints: Sequence[str], tasks: Sequence[str]
) -> FigureSpec | None:
    """Strict / soft-only / no format compliance per checkpoint, one panel per task (stacked to 100%)."""
    by = {(r["checkpoint"], r["task"]): r for r in rows}
    shown = [t for t in tasks if any(_finite(by.get((c, t), {}).get("format_soft_rate")) for c in checkpoints)]
    if not shown:
        return None
    with _rc():
        fig = _figure(max(4.5, 1.0 + 0.55 * len(checkpoints) * min(len(shown), 4)),
                      2.6 * math.ceil(len(shown) / 4) + 0.4)
        axes = _panels(fig, len(shown))
        for ax, task in zip(axes, shown):
            xs: list[int] = []
            parts: dict[str, list[float]] = {name: [] for name in FORMAT_COLOURS}
            for ci, ck in enumerate(checkpoints):
                r = by.get((ck, task), {})
                strict, soft = r.get("format_strict_rate"), r.get("format_soft_rate")
                if not (_finite(strict) and _finite(soft)):
                    continue
                soft = max(soft, strict)  # soft compliance includes strict
                xs.append(ci)
                for name, value in zip(parts, (strict, soft - strict, 1 - soft)):
                    parts[name].append(value * 100)
            # One bar call per format category (all checkpoints at once): matplotlib's cost is per call.
            bottom = [0.0] * len(xs)
            for name, values in parts.items():
                ax.bar(xs, values, bottom=bottom, color=FORMAT_COLOURS[name], width=0.7,
                       label=name if ax is axes[0] else None)
                bottom = [b + v for b, v in zip(bottom, values)]
            ax.set_xticks(range(len(checkpoints)), list(checkpoints), rotation=30 if len(checkpoints) > 3 else 0,
                          ha="right" if len(checkpoints) > 3 else "center")
            ax.set_title(task)
            ax.set_ylim(0, 100)
            ax.grid(axis="x", visible=False)
        axes[0].set_ylabel("share of completions (%)")
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside right upper", title="format")
        uri = _to_data_uri(fig)
    return FigureSpec(
        "fig-format", "Format compliance",
        "Strict: exactly the layout the prompt asked for. Soft only: the tags are there, but with extra text or "
        "spacing. None: no usable layout (the answer, if any, was dug out of plain text).",
        uri, "stacked bars of strict, soft-only and no format compliance per checkpoint and task",
    )


def _length_column(samples: Any) -> tuple[str, str]:
    if "reasoning_tokens" in samples and samples["reasoning_tokens"].notna().any():
        return "reasoning_tokens", "reasoning tokens"
    return "reasoning_words", "reasoning words"


def reasoning_length_figure(samples: Any, checkpoints: Sequence[str], tasks: Sequence[str]) -> FigureSpec | None:
    """Distribution of reasoning length per checkpoint (boxes) and task (panels), from the samples."""
    if samples is None or len(samples) == 0:
        return None
    col, label = _length_column(samples)
    groups = {key: g[col].dropna().to_numpy(dtype=float) for key, g in samples.groupby(["task", "ck"], sort=False)}
    shown = [t for t in tasks if any(len(groups.get((t, c), ())) for c in checkpoints)]
    if not shown:
        return None
    with _rc():
        fig = _figure(max(4.5, 1.0 + 0.55 * len(checkpoints) * min(len(shown), 4)),
                      2.6 * math.ceil(len(shown) / 4) + 0.3)
        axes = _panels(fig, len(shown), sharey=False)
        for ax, task in zip(axes, shown):
            data, pos, colours = [], [], []
            for ci, ck in enumerate(checkpoints):
                values = groups.get((task, ck))
                if values is None or not len(values):
                    continue
                data.append(values)
                pos.append(ci)
                colours.append(checkpoint_colour(ci))
            bp = ax.boxplot(data, positions=pos, widths=0.6, whis=(5, 95), showfliers=False, patch_artist=True,
                            medianprops={"color": "black", "lw": 1.2})
            for patch, colour in zip(bp["boxes"], colours):
                patch.set_facecolor(colour)
                patch.set_alpha(0.75)
            ax.set_xticks(range(len(checkpoints)), list(checkpoints), rotation=30 if len(checkpoints) > 3 else 0,
                          ha="right" if len(checkpoints) > 3 else "center")
            ax.set_xlim(-0.6, len(checkpoints) - 0.4)
            ax.set_ylim(bottom=0)
            ax.set_title(task)
            ax.grid(axis="x", visible=False)
        axes[0].set_ylabel(label)
        uri = _to_data_uri(fig)
    return FigureSpec(
        "fig-length", "Reasoning length",
        f"Boxes span the 25th–75th percentile of {label} per completion, the line is the median, whiskers the "
        "5th–95th percentile. A GRPO checkpoint that 'learned to think' shows here first.",
        uri, f"box plots of {label} per checkpoint and task",
    )


def accuracy_vs_length_figure(
    samples: Any, checkpoints: Sequence[str], tasks: Sequence[str], *, bins: int = 5, min_n: int = 5
) -> FigureSpec | None:
    """Accuracy within reasoning-length bins (quantiles pooled over checkpoints, so bins are comparable)."""
    import numpy as np

    if samples is None or len(samples) == 0:
        return None
    col, label = _length_column(samples)
    frame = samples[["task", "ck", col, "outcome"]].dropna(subset=[col])
    shown = [t for t in tasks if (frame["task"] == t).sum() >= min_n * 2]
    if not shown:
        return None
    with _rc():
        fig = _figure(max(4.5, 2.6 * min(len(shown), 4) + 1.2), 2.6 * math.ceil(len(shown) / 4) + 0.3)
        axes = _panels(fig, len(shown))
        for ax, task in zip(axes, shown):
            sub = frame[frame["task"] == task]
            lengths = sub[col].to_numpy(dtype=float)
            edges = np.unique(np.quantile(lengths, np.linspace(0, 1, bins + 1)))
            if len(edges) < 2:
                edges = np.array([lengths.min(), lengths.max() + 1])
            for ci, ck in enumerate(checkpoints):
                part = sub[sub["ck"] == ck]
                if part.empty:
                    continue
                x = part[col].to_numpy(dtype=float)
                ok = (part["outcome"] == "correct").to_numpy()
                idx = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, len(edges) - 2)
                xs, ys = [], []
                for b in range(len(edges) - 1):
                    m = idx == b
                    if m.sum() >= min_n:
                        xs.append(float(np.median(x[m])))
                        ys.append(float(ok[m].mean() * 100))
                if xs:
                    ax.plot(xs, ys, "o-", color=checkpoint_colour(ci), ms=4, lw=1.3, label=ck)
            ax.set_title(task)
            ax.set_ylim(0, 100)
            ax.set_xlabel(label)
        axes[0].set_ylabel("accuracy (%)")
        handles, labels = [], []
        for ax in axes:
            for h, lab in zip(*ax.get_legend_handles_labels()):
                if lab not in labels:
                    handles.append(h)
                    labels.append(lab)
        fig.legend(handles, labels, loc="outside right upper", title="checkpoint")
        uri = _to_data_uri(fig)
    return FigureSpec(
        "fig-acc-length", "Accuracy against reasoning length",
        f"Completions of a task are split into {bins} bins by {label} (same bin edges for every checkpoint); "
        f"each dot is one checkpoint's accuracy in a bin, placed at the bin's median length. Bins with fewer "
        f"than {min_n} completions are left out.",
        uri, f"accuracy per {label} bin, per checkpoint and task",
    )


def subgroup_heatmap_figure(
    rows: Sequence[dict[str, Any]], checkpoints: Sequence[str], task: str
) -> FigureSpec | None:
    """Accuracy per subgroup (rows, e.g. Health_Benchmarks specialties) and checkpoint (columns)."""
    import numpy as np

    sub = [r for r in rows if r["task"] == task]
    groups = sorted({str(r["subgroup"]) for r in sub})
    if not groups:
        return None
    by = {(r["checkpoint"], str(r["subgroup"])): r for r in sub}
    grid = np.full((len(groups), len(checkpoints)), np.nan)
    for gi, g in enumerate(groups):
        for ci, ck in enumerate(checkpoints):
            acc = by.get((ck, g), {}).get("accuracy")
            if _finite(acc):
                grid[gi, ci] = acc * 100
    with _rc():
        fig = _figure(1.8 + 1.0 * len(checkpoints) + 0.06 * max(len(g) for g in groups),
                      0.9 + 0.32 * len(groups))
        ax = fig.subplots()
        im = ax.imshow(grid, cmap="viridis", vmin=0, vmax=100, aspect="auto")
        for gi in range(len(groups)):
            for ci, ck in enumerate(checkpoints):
                v = grid[gi, ci]
                if np.isfinite(v):
                    n = by[(ck, groups[gi])].get("n")
                    ax.text(ci, gi, f"{v:.0f}%" + (f"\nn={n}" if n is not None and len(groups) <= 25 else ""),
                            ha="center", va="center", fontsize=7, color="white" if v < 60 else "black")
        ax.set_xticks(range(len(checkpoints)), list(checkpoints))
        ax.set_yticks(range(len(groups)), groups)
        ax.grid(False)
        for spine in ax.spines.values():
            spine.set_visible(False)
        fig.colorbar(im, ax=ax, label="accuracy (%)", shrink=0.8)
        uri = _to_data_uri(fig)
    return FigureSpec(
        f"fig-subgroups-{task}", f"{task}: accuracy per subgroup",
        "Accuracy per subgroup (e.g. medical specialty) and checkpoint, with the number of questions. Small "
        "subgroups have wide confidence intervals: read single cells with care.",
        uri, f"heatmap of accuracy per subgroup of {task} and checkpoint",
    )


def flips_figure(pairs: Sequence[dict[str, Any]]) -> FigureSpec | None:
    """Per (task, reference → checkpoint): questions fixed (wrong → right) and broken (right → wrong)."""
    shown = [p for p in pairs if _finite(p.get("n_fixed")) or _finite(p.get("n_broken"))]
    if not shown:
        return None
    with _rc():
        fig = _figure(6.5, 0.8 + 0.34 * len(shown))
        ax = fig.subplots()
        labels = [f"{p['task']}: {p['reference']} → {p['checkpoint']}" for p in shown]
        fixed = [float(p.get("n_fixed") or 0) for p in shown]
        broken = [-float(p.get("n_broken") or 0) for p in shown]
        y = list(range(len(shown)))[::-1]
        ax.barh(y, fixed, color=FIXED_COLOUR, label="fixed (wrong → right)")
        ax.barh(y, broken, color=BROKEN_COLOUR, label="broken (right → wrong)")
        span = max([abs(v) for v in fixed + broken] + [1])
        for yi, f, b in zip(y, fixed, broken):
            ax.text(f + span * 0.02, yi, f"{f:.0f}", va="center", fontsize=7)
            ax.text(b - span * 0.02, yi, f"{-b:.0f}", va="center", ha="right", fontsize=7)
        ax.set_yticks(y, labels)
        ax.set_xlim(-span * 1.2, span * 1.2)
        ax.axvline(0, color="black", lw=0.8)
        ax.set_xlabel("questions")
        ax.grid(axis="y", visible=False)
        ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncols=2)
        uri = _to_data_uri(fig)
    return FigureSpec(
        "fig-flips", "Flips per checkpoint pair",
        "For each checkpoint against its reference on a task: questions it fixed (reference wrong, checkpoint "
        "right) to the right, questions it broke to the left. A net gain with many broken questions is a "
        "trade, not a free improvement — browse them below with the flip filter.",
        uri, "bars of fixed and broken questions per checkpoint pair and task",
    )
