"""Figures of a run: confusion matrices, learning curves, misclassified digits."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def confusion_figure(counts: np.ndarray, title: str):
    fig, ax = plt.subplots(figsize=(6.4, 5.6))
    image = ax.imshow(counts, cmap="Blues")
    fig.colorbar(image, ax=ax)
    n = counts.shape[0]
    ax.set(xticks=range(n), yticks=range(n), xlabel="predicted", ylabel="true", title=title)
    threshold = counts.max() / 2 if counts.size else 0
    for i in range(n):
        for j in range(n):
            if counts[i, j]:
                color = "white" if counts[i, j] > threshold else "black"
                ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=7, color=color)
    fig.tight_layout()
    return fig


def learning_curves_figure(history: dict[str, list[float]]):
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


def misclassified_figure(images: np.ndarray, labels: np.ndarray, probabilities: np.ndarray, limit: int = 36):
    predictions = probabilities.argmax(axis=1)
    wrong = np.flatnonzero(predictions != labels)[:limit]
    cols = 6
    rows = max(1, int(np.ceil(len(wrong) / cols)))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.5, rows * 1.7), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, i in zip(axes.flat, wrong, strict=False):
        ax.imshow(images[i], cmap="gray")
        ax.set_title(f"{labels[i]}→{predictions[i]} ({probabilities[i, predictions[i]]:.2f})", fontsize=8)
    fig.suptitle(f"misclassified: {len(np.flatnonzero(predictions != labels))} of {len(labels)}", fontsize=10)
    fig.tight_layout()
    return fig


def accuracy_bars_figure(accuracies: dict[str, float | None], title: str):
    names = [name if len(name) <= 24 else name[:23] + "…" for name in accuracies]
    values = [v if v is not None else 0.0 for v in accuracies.values()]
    fig, ax = plt.subplots(figsize=(max(5, 1.1 * len(names) + 2), 4))
    bars = ax.bar(names, values, color="tab:blue")
    for bar, value in zip(bars, accuracies.values(), strict=True):
        label = "failed" if value is None else f"{value:.4f}"
        ax.annotate(label, (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center", va="bottom")
    ax.set(ylabel="test accuracy", ylim=(0, 1.08), title=title)
    ax.tick_params(axis="x", rotation=30)
    fig.tight_layout()
    return fig


def val_accuracy_curves_figure(curves: dict[str, list[float]], title: str):
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
