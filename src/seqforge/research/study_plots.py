"""The classic study's plots and CSVs (`dvc plots show studies/dvc.yaml`): the gradient reaching each encoder state by
distance, the loss of the vanilla RNN with and without clipping."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

Results = dict[str, dict[str, Any]]  # model name -> its measurements (metrics/study.json `models`)


def find_model(
    results: Results,
    arch: str = "rnn",
    cell: str | None = None,
    attended: bool | None = None,
    bidirectional: bool | None = True,
    clipped: bool | None = True,
) -> str | None:
    """The first model with these properties (None: any value)."""
    for name, r in results.items():
        m = r["model"]
        if m["arch"] != arch:
            continue
        if arch == "rnn" and (
            (cell and m["cell"] != cell)
            or (attended is not None and (m["attention"] != "none") != attended)
            or (bidirectional is not None and m["bidirectional"] != bidirectional)
        ):
            continue
        if clipped is not None and (r["clip_norm"] is not None) != clipped:
            continue
        return name
    return None


def clip_pair(results: Results) -> tuple[str | None, str | None]:
    """The vanilla RNN with attention trained with gradient clipping, and the one without."""
    return find_model(results, cell="rnn", attended=True), find_model(results, cell="rnn", attended=True, clipped=False)


def write_csv(path: Path, header: list[str], rows: list[list[Any]]) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)


def _relative(curve: list[float]) -> list[float]:
    return [v / curve[0] for v in curve] if curve and curve[0] > 0 else []


def gradient_plot(results: Results, out: Path) -> str:
    """`encoder_gradients.png` (relative ‖∂L/∂h_d‖ by distance, at initialisation and trained, log scale) and
    its CSV; returns the PNG's name."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4.2), layout="constrained")
    for i, when in enumerate(("initialisation", "trained")):
        ax = fig.add_subplot(1, 2, i + 1)
        for name in results:
            curve = _relative(results[name]["encoder_grad"][when])
            style = "-" if results[name]["model"].get("attention", "none") != "none" else "--"
            ax.semilogy(range(len(curve)), curve, style, label=name, linewidth=1.2)
        ax.set_title(f"at {when}" if when == "initialisation" else "after training", fontsize=10)
        ax.set_xlabel("distance from the source end (encoder steps)")
        ax.set_ylabel("‖∂L/∂h_d‖ / ‖∂L/∂h_0‖")
        ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.suptitle("Gradient reaching each encoder state (dashed: no attention)", fontsize=11)
    fig.savefig(out / "encoder_gradients.png", dpi=110)
    curves = [_relative(r["encoder_grad"]["trained"]) for r in results.values()]  # empty where not finite
    write_csv(
        out / "encoder_gradients.csv",
        ["distance", *results],
        [
            [d, *(curve[d] if d < len(curve) else "" for curve in curves)]
            for d in range(max(map(len, curves), default=0))
        ],
    )
    return "encoder_gradients.png"


def clipping_plot(results: Results, clipped: str, free: str, out: Path) -> str:
    """`clipping.png` (training loss and pre-clip gradient norms of a clipped and an unclipped model) and
    `clipping_loss.csv`; returns the PNG's name."""
    from matplotlib.figure import Figure

    from seqforge.training.diagnostics import NORM_EDGES

    fig = Figure(figsize=(11, 4.2), layout="constrained")
    ax = fig.add_subplot(1, 2, 1)
    for name in (clipped, free):
        steps, values = zip(*results[name]["train_loss"], strict=True) if results[name]["train_loss"] else ((), ())
        ax.plot(steps, values, label=f"{name} (clip_norm {results[name]['clip_norm']})", linewidth=1)
    ax.set_yscale("log")  # a diverging run reaches 1e25 before it turns NaN
    ax.set_xlabel("update")
    ax.set_ylabel("training loss")
    ax.set_title("training loss with and without clipping", fontsize=10)
    ax.legend(fontsize=8)
    ax = fig.add_subplot(1, 2, 2)
    for name in (clipped, free):
        hist = results[name]["grad_norm"].get("histogram") or []
        if hist:
            ax.stairs([c / max(sum(hist), 1) for c in hist], NORM_EDGES, label=name)
    ax.axvline(results[clipped]["clip_norm"], color="grey", linestyle="--", label="clip_norm")
    ax.set_xscale("log")
    ax.set_xlabel("global gradient norm before clipping")
    ax.set_ylabel("share of updates")
    ax.set_title("pre-clip gradient norms, whole run", fontsize=10)
    ax.legend(fontsize=8)
    fig.savefig(out / "clipping.png", dpi=110)
    losses = {name: dict(results[name]["train_loss"]) for name in (clipped, free)}
    steps = sorted(set(losses[clipped]) | set(losses[free]))
    write_csv(
        out / "clipping_loss.csv",
        ["step", clipped, free],
        [[s, losses[clipped].get(s, ""), losses[free].get(s, "")] for s in steps],
    )
    return "clipping.png"


def write_plots(summary: dict[str, Any], out: Path) -> list[str]:
    """The three plots and their CSVs; returns the PNG file names."""
    from matplotlib.figure import Figure

    results: Results = summary["models"]
    files = [gradient_plot(results, out)]

    labels = summary["length_buckets"]
    fig = Figure(figsize=(7, 4.2), layout="constrained")
    ax = fig.add_subplot()
    for name, r in results.items():
        style = "--" if r["model"].get("attention") == "none" else "-"
        ax.plot(labels, [b["bleu"] for b in r["bleu_by_length"]], style, marker="o", markersize=3, label=name)
    counts = [b["sentences"] for b in next(iter(results.values()))["bleu_by_length"]]
    ax.set_xticks(range(len(labels)), [f"{lab}\n({n})" for lab, n in zip(labels, counts, strict=True)])
    ax.set_xlabel("source length in words (test sentences)")
    ax.set_ylabel("test BLEU")
    ax.set_title("BLEU by source length (dashed: no attention)", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.savefig(out / "bleu_by_length.png", dpi=110)
    files.append("bleu_by_length.png")
    write_csv(
        out / "bleu_by_length.csv",
        ["bucket", *results],
        [[lab, *(r["bleu_by_length"][i]["bleu"] for r in results.values())] for i, lab in enumerate(labels)],
    )

    clipped, free = clip_pair(results)
    if clipped and free:
        files.append(clipping_plot(results, clipped, free, out))
    return files
