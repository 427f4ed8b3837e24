"""Pictures of audio features (matplotlib only: the runtime and the demo
draw them without TensorFlow)."""

from __future__ import annotations

import io

import numpy as np


def mel_figure_png(mels: list[np.ndarray], titles: list[str]) -> bytes:
    """One row per mel [frames, n_mels], time left to right, low bins at the bottom."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(len(mels), 1, figsize=(8, 2.2 * len(mels)), squeeze=False)
    for ax, mel, title in zip(axes[:, 0], mels, titles):
        ax.imshow(np.asarray(mel).T, origin="lower", aspect="auto", interpolation="none")
        ax.set_title(title)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80)
    plt.close(fig)
    return buffer.getvalue()
