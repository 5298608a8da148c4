"""The long-range study's report (`conf/study_long.yaml`): the claims that cannot show on Multi30k, each in
one sentence beside the numbers measured on the synthetic task (copy, reverse, recall; 5–200 symbols), a
verdict, plots, CSVs and `reports/study_long/README.md`.

As in the classic report, claims find their models by what they are (cell, attention, encoder direction,
optimizer, clipping), so a study configured differently reports what its models can show and skips the rest.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from seqforge.research.study_plots import Results, clipping_plot, find_model, gradient_plot, write_csv
from seqforge.research.study_report import provenance, write_readme

CLOSE = 5.0  # exact match, percentage points: one seed per model, so a smaller gap is "too close to call"
SEQUENCE_TASKS = ("copy", "reverse")  # whose outputs are as long as their inputs


def _rows(r: dict, task: str | None = None, bucket: str | None = None) -> list[dict]:
    return [
        b
        for b in r["accuracy_by_length"]
        if (task is None or b["task"] == task) and (bucket is None or b["bucket"] == bucket) and b["sentences"]
    ]


def exact(r: dict, tasks: tuple[str, ...] | str, bucket: str | None = None) -> float:
    """Exact match (%) over the test rows of `tasks` (in `bucket`), weighted by rows."""
    rows = [b for t in ((tasks,) if isinstance(tasks, str) else tasks) for b in _rows(r, t, bucket)]
    n = sum(b["sentences"] for b in rows)
    return sum(b["exact_match"] * b["sentences"] for b in rows) / n if n else math.nan


def _find_sgd(results: Results, clipped: bool) -> str | None:
    return next(
        (
            name
            for name, r in results.items()
            if r["model"]["arch"] == "rnn"
            and r["model"]["cell"] == "rnn"
            and r.get("optimizer") == "sgd"
            and (r["clip_norm"] is not None) == clipped
        ),
        None,
    )


def _distance(r: dict, when: str) -> str:
    """The vanishing distance at `when` as text: `> N` when the gradient never fell that far within the probe,
    `not finite` when the curve is NaN (a diverged run)."""
    curve, d = r["encoder_grad"][when], r["vanishing_distance"][when]
    if not curve or not math.isfinite(curve[0]):
        return "not finite"
    return f"{d}" if d is not None else f"> {len(curve) - 1}"


def _last_loss(r: dict) -> float:
    return r["train_loss"][-1][1] if r["train_loss"] else math.nan


def _by_bucket(r: dict, buckets: list[str]) -> str:
    return " / ".join(f"{exact(r, SEQUENCE_TASKS, b):.0f}" for b in buckets)


def _verdict(gaps: list[float]) -> str:
    """Gaps (the claim's side minus the other, percentage points): holds when all exceed `CLOSE`, mixed when
    some do, does not hold when one goes the other way by more, else too close to call."""
    wins = [g > CLOSE for g in gaps]
    return (
        "holds"
        if all(wins)
        else "mixed"
        if any(wins)
        else "does not hold here"
        if any(g < -CLOSE for g in gaps)
        else "too close to call"
    )


def claims(results: Results, buckets: list[str]) -> list[dict[str, str]]:
    """Each claim the models can test, what was measured for it, and a verdict: holds / mixed / too close to
    call / does not hold here."""
    out: list[dict[str, str]] = []
    long = buckets[-1]

    def add(claim: str, measured: str, verdict: str) -> None:
        out.append({"claim": claim, "measured": measured, "verdict": verdict})

    pairs = {
        c: (find_model(results, cell=c, attended=False), find_model(results, cell=c, attended=True))
        for c in ("rnn", "lstm", "gru")
    }
    pairs = {c: p for c, p in pairs.items() if all(p)}
    if pairs:
        parts, gaps = [], []
        for cell, (plain, att) in pairs.items():
            a, b = results[plain], results[att]
            parts.append(f"{cell}: no attention {_by_bucket(a, buckets)}, Bahdanau {_by_bucket(b, buckets)}")
            gaps.append(exact(b, SEQUENCE_TASKS, long) - exact(a, SEQUENCE_TASKS, long))
        add(
            "Attention frees the decoder from one fixed-size summary: without it, copying and reversing fail as "
            "inputs grow; with it, accuracy holds on long inputs (Bahdanau et al. 2015).",
            f"copy + reverse exact match (%) by input length ({' / '.join(buckets)} symbols): " + "; ".join(parts),
            _verdict(gaps),
        )

    plain = {c: find_model(results, cell=c, attended=False) for c in ("rnn", "lstm", "gru")}
    if plain["rnn"] and (plain["lstm"] or plain["gru"]):
        depth = len(results[plain["rnn"]]["encoder_grad"]["initialisation"])
        parts = [
            f"{results[n]['model']['cell']}: {_distance(results[n], 'initialisation')} at initialisation, "
            f"{_distance(results[n], 'trained')} trained"
            for n in plain.values()
            if n
        ]
        rnn_d = results[plain["rnn"]]["vanishing_distance"]["trained"]
        gated = [results[n]["vanishing_distance"]["trained"] for c, n in plain.items() if n and c != "rnn"]
        farther = [g is None or (rnn_d is not None and g > rnn_d) for g in gated]
        verdict = (
            "does not hold here"
            if rnn_d is None
            else "holds"
            if all(farther)
            else "mixed"
            if any(farther)
            else "does not hold here"
        )
        add(
            "In a vanilla RNN the gradient vanishes over distance; gated cells (LSTM, GRU) carry it much farther "
            "(Bengio et al. 1994; Hochreiter & Schmidhuber 1997).",
            f"distance from the source end at which ‖∂L/∂h_d‖ falls below {1e-6:g} of its value at d = 0, no attention "
            f"(probe: the {depth} nearest states of the longest validation sources): " + "; ".join(parts),
            verdict,
        )
        recall = {c: exact(results[n], "recall", long) for c, n in plain.items() if n}
        if not all(math.isnan(v) for v in recall.values()):
            add(
                "Gated cells remember a token across long distances that a vanilla RNN forgets (recall without "
                "attention).",
                f"recall exact match (%) on {long}-symbol inputs, no attention: "
                + ", ".join(f"{c} {v:.0f}" for c, v in recall.items()),
                _verdict([recall[c] - recall["rnn"] for c in recall if c != "rnn"]),
            )

    clipped, free = _find_sgd(results, True), _find_sgd(results, False)
    if clipped and free:
        c, f = results[clipped], results[free]
        cap = c["clip_norm"]
        exploded = f["grad_norm"].get("max", 0) > cap or f["grad_norm"].get("nonfinite", 0) > 0
        tamed = (
            f["grad_norm"].get("nonfinite", 0) > c["grad_norm"].get("nonfinite", 0)
            or not math.isfinite(_last_loss(f))
            or _last_loss(f) > _last_loss(c) * 1.05
        )
        adamw = next(
            (
                n
                for n, r in results.items()
                if r["model"]["arch"] == "rnn"
                and r["model"]["cell"] == "rnn"
                and r["model"]["attention"] == "none"
                and r.get("optimizer", "adamw") == "adamw"
                and r["clip_norm"] is None
            ),
            None,
        )
        contrast = (
            (
                f"; AdamW without clipping ({adamw}): largest norm "
                f"{results[adamw]['grad_norm'].get('max', math.nan):.3g}, "
                f"last loss {_last_loss(results[adamw]):.3g}"
            )
            if adamw
            else ""
        )
        add(
            "Under plain SGD at a high learning rate a vanilla RNN's gradients explode; clipping the norm keeps "
            "training stable (Pascanu et al. 2013).",
            f"SGD lr {c['lr']:g}: without clipping, largest pre-clip norm {f['grad_norm'].get('max', math.nan):.3g}, "
            f"p99 {f['grad_norm'].get('p99_max', math.nan):.3g}, non-finite updates "
            f"{f['grad_norm'].get('nonfinite', 0)}, "
            f"last training loss {_last_loss(f):.3g}; clipped at {cap:g}: clipped "
            f"{c['grad_norm'].get('clip_rate', 0):.0%} "
            f"of updates, largest norm {c['grad_norm'].get('max', math.nan):.3g}, last loss {_last_loss(c):.3g}"
            + contrast,
            "holds" if exploded and tamed else ("mixed" if exploded else "does not hold here"),
        )

    bi, uni = (
        find_model(results, cell="gru", attended=True),
        find_model(results, cell="gru", attended=True, bidirectional=False),
    )
    if bi and uni:
        tasks = sorted({b["task"] for b in results[bi]["accuracy_by_length"]})
        add(
            "A bidirectional encoder helps: each source state also summarises what follows it.",
            "GRU + Bahdanau exact match (%), bidirectional vs unidirectional: "
            + ", ".join(f"{t} {exact(results[bi], t):.0f} vs {exact(results[uni], t):.0f}" for t in tasks),
            _verdict([exact(results[bi], t) - exact(results[uni], t) for t in tasks]),
        )

    transformer = find_model(results, arch="transformer", clipped=None)
    attentive = [att for _, att in pairs.values()]
    if transformer and attentive:
        best = max(attentive, key=lambda n: exact(results[n], SEQUENCE_TASKS))
        t, b = exact(results[transformer], SEQUENCE_TASKS), exact(results[best], SEQUENCE_TASKS)
        add(
            "Self-attention relates any two positions in one step: at the same parameters and time, the "
            "Transformer copies and reverses as well as the best recurrent model with attention (Vaswani et al. 2017).",
            f"copy + reverse exact match (%) by input length ({' / '.join(buckets)} symbols): Transformer "
            f"{_by_bucket(results[transformer], buckets)}, {best} (the best recurrent model) "
            f"{_by_bucket(results[best], buckets)}",
            "too close to call" if max(t, b) <= CLOSE else "holds" if t >= b - CLOSE else "does not hold here",
        )
    return out


def accuracy_plot(summary: dict[str, Any], out: Path) -> str:
    """`accuracy_by_length.png` (exact match by length bucket, one panel per sub-task) and its CSV."""
    from matplotlib.figure import Figure

    results: Results = summary["models"]
    labels = summary["length_buckets"]
    tasks = list(dict.fromkeys(b["task"] for r in results.values() for b in r["accuracy_by_length"]))
    fig = Figure(figsize=(4.2 * len(tasks), 4.2), layout="constrained")
    for i, task in enumerate(tasks):
        ax = fig.add_subplot(1, len(tasks), i + 1)
        for name, r in results.items():
            style = "--" if r["model"].get("attention") == "none" else "-"
            ax.plot(labels, [exact(r, task, lab) for lab in labels], style, marker="o", markersize=3, label=name)
        ax.set_title(task, fontsize=10)
        ax.set_xlabel("input length (symbols)")
        ax.set_ylabel("test exact match (%)")
        ax.set_ylim(-3, 103)
        ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    fig.suptitle("Exact match by input length (dashed: no attention)", fontsize=11)
    fig.savefig(out / "accuracy_by_length.png", dpi=110)
    write_csv(
        out / "accuracy_by_length.csv",
        ["bucket", *results],  # bucket: "<sub-task> <length>"
        [[f"{task} {lab}", *(exact(r, task, lab) for r in results.values())] for task in tasks for lab in labels],
    )
    return "accuracy_by_length.png"


def _table(summary: dict[str, Any]) -> list[str]:
    results: Results = summary["models"]
    long = summary["length_buckets"][-1]
    tasks = list(dict.fromkeys(b["task"] for r in results.values() for b in r["accuracy_by_length"]))
    head = [
        "model",
        "parameters",
        "width",
        "optimizer",
        "updates",
        "train tok/s",
        *(f"{t} exact" for t in tasks),
        *(f"{t} exact {long}" for t in tasks),
        "token acc.",
        "vanishing distance init → trained",
        "clipped",
        "max grad norm",
        "non-finite",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, r in results.items():
        m, norms = r["model"], r["grad_norm"]
        rows = _rows(r)
        n = sum(b["sentences"] for b in rows)
        token = sum(b["token_accuracy"] * b["sentences"] for b in rows) / n if n else math.nan
        lines.append(
            "| "
            + " | ".join(
                [
                    name,
                    f"{r['parameters']:,}",
                    str(m.get("hidden_dim") or m.get("d_model")),
                    f"{r.get('optimizer', 'adamw')} {r.get('lr', math.nan):g}",
                    f"{r['updates']:,}",
                    f"{r['tokens_per_s']:,.0f}",
                    *(f"{exact(r, t):.1f}" for t in tasks),
                    *(f"{exact(r, t, long):.1f}" for t in tasks),
                    f"{token:.1f}",
                    f"{_distance(r, 'initialisation')} → {_distance(r, 'trained')}",
                    f"{norms.get('clip_rate', 0):.0%}" if r["clip_norm"] else "never",
                    f"{norms.get('max', math.nan):.3g}",
                    str(norms.get("nonfinite", 0)),
                ]
            )
            + " |"
        )
    return lines


def write_report(summary: dict[str, Any], out: Path) -> list[dict[str, str]]:
    """Plots, CSVs and `README.md` in `out`; returns the claims."""
    out.mkdir(parents=True, exist_ok=True)
    results: Results = summary["models"]
    found = claims(results, summary["length_buckets"])
    plots = [accuracy_plot(summary, out), gradient_plot(results, out)]
    clipped, free = _find_sgd(results, True), _find_sgd(results, False)
    if clipped and free:
        plots.append(clipping_plot(results, clipped, free, out))
    first = next(iter(results.values()))
    counts = {
        lab: sum(b["sentences"] for b in first["accuracy_by_length"] if b["bucket"] == lab)
        for lab in summary["length_buckets"]
    }
    lines = [
        "# The classic claims where distance is the variable",
        "",
        provenance(
            summary,
            "seqforge study --study long",
            " (synthetic: copy, reverse, and recall of the token after a marker in the first quarter)",
        )
        + "Greedy decoding of the test split; length "
        f"buckets (symbols) hold {', '.join(f'{lab}: {n}' for lab, n in counts.items())} rows over the sub-tasks. "
        "The Multi30k study is in [../study/README.md](../study/README.md).",
    ]
    write_readme(
        out,
        lines,
        found,
        _table(summary),
        plots,
        f"Vanishing distance: the first distance d from the source end (0: the last state read) at which the "
        f"mean ‖∂L/∂h_d‖ over the 32 validation rows with the longest sources falls below {1e-6:g} of its "
        "value at d = 0, before the first update and after the last epoch (`> N`: not within the N + 1 "
        "states every probed row has). `clipped`: share of updates whose pre-clip norm exceeded "
        "`optim.clip_norm`; `non-finite`: updates whose gradient norm was not finite.",
    )
    return found
