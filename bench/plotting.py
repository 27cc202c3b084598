"""matplotlib with the Agg backend (no display), imported before pyplot anywhere else."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt

__all__ = ["plt"]
