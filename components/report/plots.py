"""Matplotlib charts rendered to inline PNG data URIs (Agg backend: no display needed)."""
from __future__ import annotations

import base64
import io
from typing import Dict, List, Optional, Sequence

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

DPI = 100


def png_uri(png: bytes) -> str:
    """A PNG as a ``data:`` URI."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def figure_uri(fig) -> str:
    """Render and close a figure; return it as a PNG data URI."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return png_uri(buffer.getvalue())


def confusion_heatmap(counts: np.ndarray, class_names: Sequence[str]) -> str:
    """Rows = true class, columns = predicted; colour = share of the row, text = count."""
    n = len(class_names)
    rows = counts.sum(axis=1, keepdims=True)
    share = np.divide(counts, rows, out=np.zeros_like(counts), where=rows > 0)
    fig, ax = plt.subplots(figsize=(1.5 + 0.62 * n, 1.2 + 0.55 * n))
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), labels=class_names, rotation=45, ha="right")
    ax.set_yticks(range(n), labels=class_names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    for i in range(n):
        for j in range(n):
            if counts[i, j]:
                ax.text(j, i, f"{counts[i, j]:g}", ha="center", va="center", fontsize=8,
                        color="white" if share[i, j] > 0.5 else "black")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of true class")
    return figure_uri(fig)


def per_class_bars(rows: List[dict]) -> str:
    """Precision, recall and F1 per class name, grouped bars."""
    names = [r["name"] for r in rows]
    x = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(max(6, 0.8 * len(rows)), 3.6))
    for offset, metric in zip((-0.27, 0, 0.27), ("precision", "recall", "f1_score")):
        values = [r[metric] if r[metric] is not None else np.nan for r in rows]
        ax.bar(x + offset, values, width=0.26, label=metric.replace("_score", ""))
    ax.set_xticks(x, labels=names, rotation=45, ha="right")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("score")
    ax.legend(ncol=3, loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)
    ax.grid(axis="y", alpha=0.3)
    return figure_uri(fig)


def reliability(buckets: List[dict]) -> str:
    """Reliability diagram of the top-1 prediction: accuracy vs mean confidence per bucket."""
    fig, (ax, hist) = plt.subplots(2, 1, figsize=(5.5, 6), sharex=True,
                                   gridspec_kw={"height_ratios": [3, 1]})
    ax.plot([0, 1], [0, 1], "--", color="grey", label="perfect calibration")
    ax.plot([b["mean_prediction"] for b in buckets], [b["observed"] for b in buckets], "o-",
            color="tab:red", label="top-1 prediction")
    ax.set_ylabel("accuracy")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(loc="lower right", fontsize=8)
    hist.bar([b["mean_prediction"] for b in buckets], [b["count"] for b in buckets], width=0.05,
             color="tab:red", alpha=0.6)
    hist.set_yscale("log")
    hist.set_xlabel("confidence (top-1 probability)")
    hist.set_ylabel("count")
    return figure_uri(fig)


def training_curves(history: Dict[str, List[float]]) -> str:
    """Loss and accuracy per epoch, train vs validation; a line marks a fine-tuning phase."""
    epochs = np.arange(1, len(history["loss"]) + 1)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
    for ax, metric in zip(axes, ("loss", "accuracy")):
        for key, style in ((metric, "o-"), (f"val_{metric}", "s--")):
            if key in history:
                ax.plot(epochs, history[key], style, label=key)
        phases = history.get("phase") or []
        for epoch, (before, after) in enumerate(zip(phases, phases[1:]), start=1):
            if before != after:
                ax.axvline(epoch + 0.5, color="grey", linestyle=":", label="fine-tuning starts")
        ax.set_xlabel("epoch")
        ax.set_title(metric)
        ax.set_xticks(epochs)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return figure_uri(fig)


def _display(image: np.ndarray) -> np.ndarray:
    """A model-input image scaled to [0, 1] for display (2-D for one channel)."""
    low, high = float(image.min()), float(image.max())
    scaled = (image - low) / (high - low) if high > low else np.zeros_like(image)
    return scaled[..., 0] if scaled.shape[-1] == 1 else scaled


def explanations(samples: List[dict], cam_layer: Optional[str]) -> str:
    """One column per sample; rows: model input, SmoothGrad saliency, Grad-CAM overlays."""
    rows = ["model input", "saliency\n(SmoothGrad)"]
    if cam_layer:
        rows.append(f"Grad-CAM\n({cam_layer})")
    keys = [None, "saliency", "grad_cam"]
    fig, axes = plt.subplots(len(rows), len(samples), figsize=(2.1 * len(samples), 2.3 * len(rows)),
                             squeeze=False)
    for col, sample in enumerate(samples):
        shown = _display(sample["image"])
        verdict = "right" if sample["label"] == sample["predicted"] else "WRONG"
        axes[0][col].set_title(f"true {sample['label']}\npred {sample['predicted']} "
                               f"{sample['confidence']:.2f}\n{verdict}", fontsize=8,
                               color="black" if verdict == "right" else "tab:red")
        for row, key in enumerate(keys[:len(rows)]):
            ax = axes[row][col]
            ax.imshow(shown, cmap="gray" if shown.ndim == 2 else None)
            if key is not None:
                ax.imshow(sample[key], cmap="jet", alpha=0.5, vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if col == 0:
                ax.set_ylabel(rows[row], fontsize=9)
    return figure_uri(fig)


def _signed_map(ax, values: np.ndarray, title: str) -> None:
    bound = float(np.abs(values).max()) or 1.0
    ax.imshow(values, cmap="RdBu_r", vmin=-bound, vmax=bound)
    ax.set_title(title, fontsize=9)


def filter_bank(view: dict, image: np.ndarray, columns: int = 6) -> str:
    """Each handcrafted kernel above its response on the sample image; the sample first."""
    names = list(view["kernels"])
    panels = len(names) + 1
    blocks = -(-panels // columns)
    fig, axes = plt.subplots(2 * blocks, columns, figsize=(2.0 * columns, 4.2 * blocks),
                             squeeze=False)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_frame_on(False)
    shown = _display(image)
    axes[1][0].imshow(shown, cmap="gray" if shown.ndim == 2 else None)
    axes[1][0].set_title("sample input", fontsize=9)
    for index, name in enumerate(names, start=1):
        block, col = divmod(index, columns)
        _signed_map(axes[2 * block][col], view["kernels"][name], f"kernel {name}")
        _signed_map(axes[2 * block + 1][col], view["responses"][name], "response")
    return figure_uri(fig)


def variant_accuracy(rows: List[dict]) -> str:
    """``lensflow compare``: mean accuracy per variant with ± std error bars, and beside each
    bar the per-class recall range (lowest to highest class recall, each averaged over seeds)."""
    x = np.arange(len(rows))
    means = [r["accuracy_mean"] if r["accuracy_mean"] is not None else np.nan for r in rows]
    errors = [r["accuracy_std"] or 0.0 for r in rows]
    fig, ax = plt.subplots(figsize=(max(5.5, 1.3 * len(rows) + 2), 4))
    bars = ax.bar(x, means, width=0.5, yerr=errors, capsize=6, color="tab:blue",
                  label="accuracy (mean ± std over seeds)")
    for bar, row in zip(bars, rows):
        if row["accuracy_mean"] is None:
            continue
        ax.annotate(f"{row['accuracy_mean']:.3f}\nn={row['n']}", (bar.get_x() + bar.get_width() / 2,
                    0.02), ha="center", va="bottom", color="white", fontsize=8)
    low = [r["recall_min_mean"] for r in rows]
    high = [r["recall_max_mean"] for r in rows]
    known = [i for i, (a, b) in enumerate(zip(low, high)) if a is not None and b is not None]
    if known:
        ax.vlines(x[known] + 0.34, [low[i] for i in known], [high[i] for i in known],
                  color="tab:orange", linewidth=3, label="per-class recall, min to max")
        ax.plot(x[known] + 0.34, [low[i] for i in known], "v", color="tab:orange")
        ax.plot(x[known] + 0.34, [high[i] for i in known], "^", color="tab:orange")
    ax.set_xticks(x, labels=[r["variant"] for r in rows], rotation=20, ha="right")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("accuracy / recall")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, frameon=False, fontsize=9)
    return figure_uri(fig)
