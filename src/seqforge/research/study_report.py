"""The study's report: each classic claim in one sentence beside the numbers measured for it (and a verdict
that says when they disagree), plots, CSVs for `dvc plots`, and `reports/study/README.md`.

Claims find their models by what they are (cell, attention, encoder direction, clipping, family), not
by name, so a study configured differently reports what its models can show and skips the rest.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from seqforge.research.study_plots import Results, clip_pair, find_model, write_plots

CLOSE = 0.5  # BLEU: one seed per model, so a smaller gap between two models is "too close to call"


def _bleu(r: dict) -> float:
    return r["test"]["bleu"]


def _sci(x: float) -> str:
    return f"{x:.1e}" if x and math.isfinite(x) else str(x)


def _gap_by_bucket(with_att: dict, without: dict) -> list[float]:
    return [a["bleu"] - b["bleu"] for a, b in zip(with_att["bleu_by_length"], without["bleu_by_length"], strict=True)]


def claims(results: Results) -> list[dict[str, str]]:
    """Each claim the study's models can test, what was measured for it, and a verdict: holds / mixed /
    too close to call / does not hold here."""
    out: list[dict[str, str]] = []

    def add(claim: str, measured: str, verdict: str) -> None:
        out.append({"claim": claim, "measured": measured, "verdict": verdict})

    plain = {c: find_model(results, cell=c, attended=False) for c in ("rnn", "lstm", "gru")}
    attended = {c: find_model(results, cell=c, attended=True) for c in ("rnn", "lstm", "gru")}

    claim = "A vanilla RNN's gradient vanishes over distance; LSTM and GRU gates keep it alive."
    if all(plain.values()):
        decay = {c: results[plain[c]]["decay"] for c in plain}
        measured = (
            "‖∂L/∂h‖ at the farthest source position over the nearest, without attention — after training: "
            + ", ".join(f"{c.upper()} {_sci(decay[c]['trained'])}" for c in decay)
            + "; at initialisation: "
            + ", ".join(f"{c.upper()} {_sci(decay[c]['initialisation'])}" for c in decay)
        )
        holds = [
            decay["rnn"][when] < min(decay["lstm"][when], decay["gru"][when]) for when in ("initialisation", "trained")
        ]
        add(
            claim,
            measured,
            "holds"
            if all(holds)
            else (
                "mixed: at initialisation only"
                if holds[0]
                else "mixed: after training only"
                if holds[1]
                else "does not hold here"
            ),
        )

    claim = "LSTM and GRU translate better than a vanilla RNN."
    pairs = [
        (fam, models)
        for fam, models in (("without attention", plain), ("with attention", attended))
        if all(models.values())
    ]
    if pairs:
        measured = (
            "; ".join(f"{fam}: " + ", ".join(f"{c.upper()} {_bleu(results[m[c]]):.2f}" for c in m) for fam, m in pairs)
            + " test BLEU"
        )
        wins = [_bleu(results[m["rnn"]]) < min(_bleu(results[m["lstm"]]), _bleu(results[m["gru"]])) for _, m in pairs]
        add(claim, measured, "holds" if all(wins) else ("mixed" if any(wins) else "does not hold here"))

    claim = "The GRU is a lighter LSTM of similar quality: at the same parameter budget it is wider and as good."
    if attended["lstm"] and attended["gru"]:
        lstm, gru = results[attended["lstm"]], results[attended["gru"]]
        gap = _bleu(gru) - _bleu(lstm)
        measured = (
            f"with attention, {lstm['parameters']:,} vs {gru['parameters']:,} parameters: hidden "
            f"{lstm['model']['hidden_dim']} (LSTM) vs {gru['model']['hidden_dim']} (GRU); "
            f"{lstm['tokens_per_s']:,.0f} vs {gru['tokens_per_s']:,.0f} training tokens/s; "
            f"test BLEU {_bleu(lstm):.2f} vs {_bleu(gru):.2f} (GRU {gap:+.2f})"
        )
        add(claim, measured, "holds" if gap > -CLOSE else "does not hold here")

    claim = "A bidirectional encoder, reading the source both ways, translates better than a one-way one."
    bi, uni = (
        find_model(results, cell="gru", attended=True),
        find_model(results, cell="gru", attended=True, bidirectional=False),
    )
    if bi and uni:
        gap = _bleu(results[bi]) - _bleu(results[uni])
        add(
            claim,
            f"GRU with attention: test BLEU {_bleu(results[bi]):.2f} bidirectional vs "
            f"{_bleu(results[uni]):.2f} unidirectional ({gap:+.2f})",
            "too close to call" if abs(gap) < CLOSE else "holds" if gap > 0 else "does not hold here",
        )

    claim = (
        "Without attention the source is squeezed into one vector and long sentences suffer; "
        "attention fixes it (its gain grows with length)."
    )
    cells = [c for c in plain if plain[c] and attended[c]]
    if cells:
        parts, growing = [], []
        for c in cells:
            gaps = _gap_by_bucket(results[attended[c]], results[plain[c]])
            buckets = [i for i, b in enumerate(results[plain[c]]["bleu_by_length"]) if b["sentences"]]
            parts.append(f"{c.upper()} " + " / ".join(f"{gaps[i]:+.1f}" for i in buckets))
            growing.append(gaps[buckets[-1]] > gaps[buckets[0]])
        labels = [b["bucket"] for b in results[plain[cells[0]]]["bleu_by_length"] if b["sentences"]]
        sizes = [b["sentences"] for b in results[plain[cells[0]]]["bleu_by_length"] if b["sentences"]]
        measured = (
            f"BLEU gain of attention by source length "
            f"({', '.join(f'{label}: {n}' for label, n in zip(labels, sizes, strict=True))} "
            f"test sentences): " + "; ".join(parts)
        )
        add(claim, measured, "holds" if all(growing) else ("mixed" if any(growing) else "does not hold here"))

    claim = "Attention gives every source position a short gradient path: no decay with distance."
    if cells:
        measured = "farthest/nearest ‖∂L/∂h‖ after training, attention vs none: " + ", ".join(
            f"{c.upper()} {_sci(results[attended[c]]['decay']['trained'])} vs "
            f"{_sci(results[plain[c]]['decay']['trained'])}"
            for c in cells
        )
        holds = [results[attended[c]]["decay"]["trained"] > results[plain[c]]["decay"]["trained"] for c in cells]
        add(claim, measured, "holds" if all(holds) else ("mixed" if any(holds) else "does not hold here"))

    claim = "A vanilla RNN's gradients explode now and then; clipping tames them and training goes better."
    clipped, free = clip_pair(results)
    if clipped and free:
        c, f = results[clipped], results[free]
        cap = c["clip_norm"]
        above = f["grad_norm"].get("max", math.nan)
        measured = (
            f"vanilla RNN with attention, clip_norm {cap:g} vs none: largest pre-clip norm "
            f"{c['grad_norm'].get('max', math.nan):.3g} vs {above:.3g}, "
            f"non-finite updates {c['grad_norm'].get('nonfinite', 0)} vs {f['grad_norm'].get('nonfinite', 0)}, "
            f"updates clipped {c['grad_norm'].get('clip_rate', 0):.1%}; final validation loss "
            f"{c['val_loss'][-1] if c['val_loss'] else math.nan:.3f} vs "
            f"{f['val_loss'][-1] if f['val_loss'] else math.nan:.3f}; "
            f"test BLEU {_bleu(c):.2f} vs {_bleu(f):.2f}"
        )
        better = _bleu(c) >= _bleu(f)
        exploded = above > 10 * cap
        add(
            claim,
            measured,
            "holds" if better and exploded else ("mixed" if better or exploded else "does not hold here"),
        )

    claim = "The Transformer drops recurrence altogether and, at the same budget, trains faster and translates better."
    transformer = find_model(results, arch="transformer", bidirectional=None)
    rnns = [n for n, r in results.items() if r["model"]["arch"] == "rnn"]
    if transformer and rnns:
        t, best = results[transformer], max(rnns, key=lambda n: _bleu(results[n]))
        fastest = max(rnns, key=lambda n: results[n]["tokens_per_s"])
        measured = (
            f"Transformer test BLEU {_bleu(t):.2f} vs the best recurrent model ({best}) {_bleu(results[best]):.2f}; "
            f"{t['tokens_per_s']:,.0f} training tokens/s vs the fastest recurrent one ({fastest}) "
            f"{results[fastest]['tokens_per_s']:,.0f}"
        )
        wins = [_bleu(t) >= _bleu(results[best]), t["tokens_per_s"] >= results[fastest]["tokens_per_s"]]
        add(claim, measured, "holds" if all(wins) else ("mixed" if any(wins) else "does not hold here"))
    return out


def _table(summary: dict[str, Any]) -> list[str]:
    labels = summary["length_buckets"]
    head = [
        "model",
        "parameters",
        "width",
        "epochs",
        "updates",
        "train tok/s",
        "test BLEU",
        "chrF",
        *(f"BLEU {lab}" for lab in labels),
        "grad decay init → trained",
        "clipped",
        "max grad norm",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, r in summary["models"].items():
        m = r["model"]
        width = m.get("hidden_dim") or m.get("d_model")
        norms = r["grad_norm"]
        lines.append(
            "| "
            + " | ".join(
                [
                    name,
                    f"{r['parameters']:,}",
                    str(width),
                    str(r["epochs"]),
                    f"{r['updates']:,}",
                    f"{r['tokens_per_s']:,.0f}",
                    f"{r['test']['bleu']:.2f}",
                    f"{r['test']['chrf']:.2f}",
                    *(f"{b['bleu']:.1f}" for b in r["bleu_by_length"]),
                    f"{_sci(r['decay']['initialisation'])} → {_sci(r['decay']['trained'])}",
                    f"{norms.get('clip_rate', 0):.1%}" if r["clip_norm"] else "never",
                    f"{norms.get('max', math.nan):.3g}",
                ]
            )
            + " |"
        )
    return lines


def write_report(summary: dict[str, Any], out: Path) -> list[dict[str, str]]:
    """Plots, CSVs and `README.md` in `out`; returns the claims."""
    out.mkdir(parents=True, exist_ok=True)
    found = claims(summary["models"])
    plots = write_plots(summary, out)
    counts = [b["sentences"] for b in next(iter(summary["models"].values()))["bleu_by_length"]]
    lines = [
        "# What the classics claim, measured",
        "",
        provenance(summary, "seqforge study")
        + "Test BLEU is sacreBLEU on the task's test split with the task's decoding settings; by length, the "
        f"buckets hold {', '.join(f'{lab}: {n}' for lab, n in zip(summary['length_buckets'], counts, strict=True))} "
        "sentences (source words). The claims that need long inputs (attention at length, vanishing and "
        "exploding gradients) are measured where distance is the variable, on synthetic sequences of up to 200 "
        "symbols: [../study_long/README.md](../study_long/README.md) (`seqforge study --study long`).",
    ]
    write_readme(
        out,
        lines,
        found,
        _table(summary),
        plots,
        "Gradient decay: mean ‖∂L/∂h‖ of the encoder state farthest from the source end over the nearest "
        "(d = 0, the last state read), on the 32 validation sentences with the longest sources, before the "
        "first update and after the last epoch. `clipped`: share of updates whose norm exceeded "
        "`optim.clip_norm`.",
    )
    return found


def provenance(summary: dict[str, Any], command: str, task_note: str = "") -> str:
    """The sentence that opens a study's report: the command, run and profile that wrote it, its task (and
    `task_note`), the parameter budget, the training limits and the study's wall time."""
    train = summary["train"]
    return (
        f"Written by `{command}` ({summary['study']}, MLflow run `{summary['parent_run_id']}`, profile "
        f"`{summary['profile']}`): task `{summary['task']}`{task_note}, every model sized to "
        f"{summary['parameter_budget']:,} parameters and trained for at most {train['max_time']} (DD:HH:MM:SS) "
        f"with {train['num_workers']} Ray Train workers; the whole study took {summary['wall_seconds'] / 60:.1f} min. "
    )


def write_readme(
    out: Path, intro: list[str], found: list[dict[str, str]], table: list[str], plots: list[str], note: str
) -> None:
    """A study's `README.md` in `out`: `intro`, the claims with their verdicts, the per-model `table` and the
    `note` that explains its columns, then the plots."""
    lines = [
        *intro,
        "",
        "| claim | measured | verdict |",
        "|---|---|---|",
        *(f"| {c['claim']} | {c['measured']} | **{c['verdict']}** |" for c in found),
        "",
        *table,
        "",
        note,
        "",
        *(f"![{p}]({p})" for p in plots),
        "",
    ]
    (out / "README.md").write_text("\n".join(lines))
