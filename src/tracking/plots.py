"""Figures of a run: confusion matrices, learning curves, misclassified digits."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

from typing import TYPE_CHECKING

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def confusion_figure(counts: np.ndarray, title: str) -> Figure:
    from sklearn.metrics import ConfusionMatrixDisplay

    fig, ax = plt.subplots(figsize=(6.4, 5.6))
    display = ConfusionMatrixDisplay(counts, display_labels=list(range(counts.shape[0])))
    display.plot(ax=ax, cmap="Blues", values_format="d", text_kw={"fontsize": 7})
    ax.set(xlabel="predicted", ylabel="true", title=title)
    fig.tight_layout()
    return fig


def learning_curves_figure(history: dict[str, list[float]]) -> Figure:
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, metric in zip(axes, ("loss", "accuracy"), strict=True):
        for prefix, label in (("", "training"), ("val_", "validation")):
            values = history.get(prefix + metric, [])
            if values:
                ax.plot(range(1, len(values) + 1), values, marker="o", label=label)
        ax.set(xlabel="epoch", ylabel=metric, title=metric)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    return fig


def misclassified_figure(
    images: np.ndarray, labels: np.ndarray, probabilities: np.ndarray, limit: int = 36
) -> Figure:
    """The first `limit` misclassified digits, six to a row, each titled true→predicted (probability).

    Drawn as one picture in one axes: 36 axes of their own took about 2 s a run to build and save."""
    predictions = probabilities.argmax(axis=1)
    wrong = np.flatnonzero(predictions != labels)[:limit]
    cols = 6
    rows = max(1, int(np.ceil(len(wrong) / cols)))
    height, width = images.shape[1:3] if len(images) else (28, 28)
    cell_w, cell_h = width + 8, height + 12  # room between the digits, and above each for its title
    sheet = np.full((rows * cell_h, cols * cell_w), np.nan)
    fig, ax = plt.subplots(figsize=(cols * 1.5, rows * 1.7))
    for k, i in enumerate(wrong):
        top, left = (k // cols) * cell_h + 10, (k % cols) * cell_w + 4
        sheet[top : top + height, left : left + width] = images[i].reshape(height, width)
        title = f"{labels[i]}→{predictions[i]} ({probabilities[i, predictions[i]]:.2f})"
        ax.text(left + width / 2, top - 2, title, ha="center", va="bottom", fontsize=8)
    ax.imshow(np.ma.masked_invalid(sheet), cmap="gray", interpolation="nearest")
    ax.axis("off")
    fig.suptitle(f"misclassified: {len(np.flatnonzero(predictions != labels))} of {len(labels)}", fontsize=10)
    fig.tight_layout()
    return fig


def accuracy_bars_figure(scores: dict[str, dict[str, tuple]], title: str) -> Figure:
    """Validation and test accuracy per configuration, {name: {split: (mean, std, n)}}: the mean of its
    finished runs, with the standard deviation as an error bar when it has more than one."""
    names = [name if len(name) <= 24 else name[:23] + "…" for name in scores]
    splits = ["validation", "test"]
    fig, ax = plt.subplots(figsize=(max(6.5, 1.4 * len(names) + 3.5), 4.5))
    width = 0.38
    for i, (split, color) in enumerate(zip(splits, ("tab:blue", "tab:orange"), strict=True)):
        means = [s[split][0] for s in scores.values()]
        x = np.arange(len(names)) + (i - 0.5) * width
        bars = ax.bar(
            x,
            [m if m is not None else 0.0 for m in means],
            width,
            yerr=[s[split][1] for s in scores.values()],
            capsize=4,
            color=color,
            label=split,
        )
        for bar, (mean, std, n) in zip(bars, (s[split] for s in scores.values()), strict=True):
            label = "failed" if mean is None else f"{mean:.4f}" + (f"\n±{std:.4f}\nn={n}" if n > 1 else "")
            top = (bar.get_x() + bar.get_width() / 2, bar.get_height() + std)
            ax.annotate(
                label, top, ha="center", va="bottom", fontsize=7, xytext=(0, 2), textcoords="offset points"
            )
    ax.set_xticks(np.arange(len(names)), names)
    # zoomed on the scores, so that differences and error bars of a tenth of a point show
    ends = [(m - d, m + d) for s in scores.values() for m, d, _ in s.values() if m is not None]
    low = min((e[0] for e in ends), default=0.0)
    high = max((e[1] for e in ends), default=1.0)
    pad = max(0.002, 0.25 * (high - low))
    ax.set(ylabel="accuracy (mean ± std over seeds)", ylim=(max(0.0, low - 2 * pad), high + 2 * pad))
    ax.set_title(title)
    ax.tick_params(axis="x", rotation=30)
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    return fig


def val_accuracy_curves_figure(curves: dict[str, list[float]], title: str) -> Figure:
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, values in curves.items():
        if values:
            ax.plot(range(1, len(values) + 1), values, marker="o", label=name)
    ax.set(xlabel="epoch", ylabel="validation accuracy", title=title)
    ax.grid(alpha=0.3)
    if any(curves.values()):
        ax.legend()
    fig.tight_layout()
    return fig


def reliability_figure(curves: dict[str, dict[str, list[tuple]]], metrics: dict[str, float]) -> Figure:
    """Accuracy against confidence per split, before and after calibration: on the diagonal, a model
    is as sure as it is right. `curves`: {split: {label: [(confidence, accuracy, count), ...]}}."""
    fig, axes = plt.subplots(1, len(curves), figsize=(5.5 * len(curves), 5), squeeze=False)
    for ax, (split, lines) in zip(axes[0], curves.items(), strict=True):
        ax.plot([0, 1], [0, 1], color="gray", linestyle=":", label="perfectly calibrated")
        for (label, points), style in zip(lines.items(), ("o--", "o-"), strict=False):
            confidence, accuracy, _ = zip(*points, strict=True) if points else ((), (), ())
            ax.plot(confidence, accuracy, style, label=label)
        prefix = "val" if split == "validation" else split
        ax.set(
            xlabel="confidence (probability of the predicted digit)",
            ylabel="accuracy",
            xlim=(0, 1.02),
            ylim=(0, 1.02),
            title=f"{split}: ECE {metrics[prefix + '_ece_before']:.4f} -> {metrics[prefix + '_ece']:.4f}",
        )
        ax.grid(alpha=0.3)
        ax.legend(loc="upper left")
    fig.tight_layout()
    return fig
