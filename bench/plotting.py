"""matplotlib with the Agg backend (no display), imported before pyplot anywhere else."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

__all__ = ["plt", "save_figure"]


def save_figure(fig: Figure, path: Path, title: str) -> None:
    """Every benchmark plot's ending: the run's caption on top, the PNG written, memory freed."""
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
