"""One Ray Train worker per node using all its cores against one worker per core: training tokens/s by wall
time of the default models and of the peer configuration, the same updates of the same size.

    python -m bench.placement [--steps 120] [--rounds 2] [--experiment gru_bahdanau ...] [--precision auto]

Needs the translation task tokenized (`dvc repro tokenize@translation`). Each experiment trains one epoch over
the first `--steps` × 64 Multi30k pairs through Ray Train as the pipeline does (`bench.seqforge_side.run_seqforge`,
a local Ray instance on this machine's 2 cores): once as `num_workers: auto` places it (1 worker, 2 threads) and
once as 2 workers × 1 thread with DDP (the default before `auto`), each update of the same size (the one worker's
token budget is twice each of the two's). Rounds alternate which goes first. Tokens/s: source and target
subwords per second of the epoch's training time (Ray's start-up and the checkpoint excluded).

Prints the table and, as its last line, `1x2/2x1 training tokens/s ratio gru_bahdanau R`; writes
`reports/placement/placement-<steps>.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
from pathlib import Path

from bench.opennmt_side import SENTENCES, THREADS, write_corpus
from bench.seqforge_side import batch_tokens_for, peer_experiment, run_seqforge

PLACEMENTS = {"1x2": 1, "2x1": 2}  # name -> workers (threads: THREADS / workers)
OUT = Path("reports/placement")


def experiment(name: str):
    """`peer` (OpenNMT-py's configuration, `bench.peer_opennmt`) or a conf/experiments/ name."""
    from seqforge.experiments.config import load_experiment

    return peer_experiment() if name == "peer" else load_experiment(name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=120, help="updates of about 64 sentences")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--experiment", action="append", help="repeatable; `peer` too (default: the default GRU)")
    parser.add_argument("--precision", choices=["auto", "fp32", "bf16-mixed"], default="auto")
    args = parser.parse_args()

    from rich.console import Console
    from rich.table import Table

    from seqforge.training.worker.precision import resolved

    names = args.experiment or ["gru_bahdanau"]
    sizes = write_corpus(args.steps)
    budgets = {place: batch_tokens_for(SENTENCES / workers) for place, workers in PLACEMENTS.items()}
    runs: dict[str, dict[str, list[dict]]] = {name: {place: [] for place in PLACEMENTS} for name in names}
    for name in names:
        for r in range(args.rounds):
            order = list(PLACEMENTS) if r % 2 == 0 else list(PLACEMENTS)[::-1]
            for place in order:
                run = run_seqforge(sizes, budgets[place], PLACEMENTS[place], args.precision, experiment(name))
                runs[name][place].append(run)
    precision = resolved(args.precision, False)
    table = Table(
        title=f"Ray Train placement on {THREADS} cores: {args.steps} updates of ~{SENTENCES} sentences, {precision}, "
        f"{args.rounds} rounds (means)"
    )
    for col in ("experiment", "workers × threads", "src+tgt tok/s", "wall s", "÷ 2 × 1"):
        table.add_column(col, justify="left" if col in ("experiment", "workers × threads") else "right")
    ratios = {}
    for name, by_place in runs.items():
        tok_s = {p: statistics.fmean(r["train_src"] + r["train_tgt"] for r in rs) for p, rs in by_place.items()}
        ratios[name] = tok_s["1x2"] / tok_s["2x1"]
        for place, rs in by_place.items():
            workers = PLACEMENTS[place]
            table.add_row(
                name,
                f"{workers} × {THREADS // workers}",
                f"{tok_s[place]:,.0f}",
                f"{statistics.fmean(r['wall_s'] for r in rs):.1f}",
                f"{tok_s[place] / tok_s['2x1']:.2f}×",
            )
    Console(width=140).print(table)
    OUT.mkdir(parents=True, exist_ok=True)
    out = OUT / f"placement-{args.steps}.json"
    report = {"steps": args.steps, "precision": precision, "cpus": os.cpu_count(), "budgets": budgets, "runs": runs}
    out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"written: {out}")
    for name in sorted(ratios, key=lambda n: n == "gru_bahdanau"):
        print(f"1x2/2x1 training tokens/s ratio {name} {ratios[name]:.2f}")


if __name__ == "__main__":
    main()
