"""A run's gradient diagnostics after it ends (`training.worker.gradients` measures them in the worker): read
from its last checkpoint, plotted, and logged to its MLflow run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import mlflow
import torch

from seqforge.training.worker.diagnostics_record import NORM_EDGES, STATE_KEY


def read_diagnostics(checkpoint_file: Path) -> dict[str, dict[str, Any]]:
    """The records a Lightning checkpoint carries (empty when the run measured none)."""
    ckpt = torch.load(checkpoint_file, map_location="cpu", weights_only=False)
    state = ckpt.get("callbacks", {}).get(STATE_KEY, {})
    return state.get("records", {})


def plot_encoder_gradients(curves: dict[str, list[float]], title: str):
    """Mean ‖∂L/∂h‖ by distance from the source end, one line per label, log scale."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.2), layout="constrained")
    ax = fig.add_subplot()
    for label, curve in curves.items():
        ax.semilogy(range(len(curve)), curve, label=label, marker=".", markersize=3)
    ax.set_xlabel("distance from the source end (encoder steps; 0 = last state read)")
    ax.set_ylabel("mean ‖∂L/∂h‖")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def plot_norm_histograms(histograms: dict[str, list[int]], title: str, clip_norm: float | None = None):
    """Pre-clip gradient-norm histograms (share of updates per log-spaced bin), one step line per label."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.2), layout="constrained")
    ax = fig.add_subplot()
    for label, counts in histograms.items():
        total = max(sum(counts), 1)
        ax.stairs([c / total for c in counts], NORM_EDGES, label=label)
    if clip_norm is not None:
        ax.axvline(clip_norm, color="grey", linestyle="--", label=f"clip_norm {clip_norm:g}")
    ax.set_xscale("log")
    ax.set_xlabel("global gradient norm before clipping")
    ax.set_ylabel("share of updates")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    return fig


def log_diagnostics(records: dict[str, dict[str, Any]], name: str, clip_norm: float | None) -> None:
    """Write a run's records to its active MLflow run: `diagnostics/records.json` and two plots."""
    if not records:
        return
    mlflow.log_text(json.dumps(records, indent=1), "diagnostics/records.json")
    epochs = sorted(records, key=int)
    mlflow.log_figure(
        plot_encoder_gradients(
            {("initialisation" if e == "0" else f"epoch {e}"): records[e]["encoder_grad"] for e in epochs},
            f"{name}: gradient reaching the encoder states",
        ),
        "diagnostics/encoder_gradients.png",
    )
    histograms = {f"epoch {e}": records[e]["grad_norm"]["histogram"] for e in epochs if "grad_norm" in records[e]}
    if histograms:
        mlflow.log_figure(
            plot_norm_histograms(histograms, f"{name}: gradient norms before clipping", clip_norm),
            "diagnostics/grad_norms.png",
        )
