"""Classification's eval figure: the confusion matrix."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgetl.fileio import atomic_path


def write_plots(metrics: dict, out_dir: Path) -> dict[str, Path]:
    """confusion.png in ``out_dir`` (key ``png``) from an eval result."""
    png_path = Path(out_dir) / "confusion.png"
    plot_confusion(
        np.array(metrics["confusion"]),
        list(metrics["per_class"]),
        png_path,
        title=f"{Path(metrics['artifact']).name} on {metrics['split']} (top-1 {metrics['top1']:.4f})",
    )
    return {"png": png_path}


def plot_confusion(confusion: np.ndarray, labels: list[str], path: Path, title: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(labels)
    rows = confusion.sum(axis=1, keepdims=True).clip(min=1)
    fig, ax = plt.subplots(figsize=(max(5, 0.55 * n + 2), max(4, 0.5 * n + 1.5)))
    im = ax.imshow(confusion / rows, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), labels, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(n), labels, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if n <= 20:
        for i in range(n):
            for j in range(n):
                if confusion[i, j]:
                    ax.text(
                        j,
                        i,
                        str(confusion[i, j]),
                        ha="center",
                        va="center",
                        fontsize=6,
                        color="white" if confusion[i, j] / rows[i, 0] > 0.5 else "black",
                    )
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
