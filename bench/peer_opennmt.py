"""seqforge and OpenNMT-py 3.5.1 side by side: training and beam-5 decoding tokens/s, same data, same model;
or time to BLEU, each toolkit's recipe for the same minutes.

    python -m bench.peer_opennmt [--steps 200] [--rounds 2] [--workers 1] [--precision auto] [--decode-only]
    SEQFORGE_DATA_MIRROR=../shared/data python -m bench.peer_opennmt --minutes 16 [--ours-at 6 --ours-at 16]

Needs the translation task tokenized on the default profile (`dvc repro tokenize@translation`).
OpenNMT-py goes into its own venv (runs/bench/opennmt-venv), never into the project's: its pin
`torch<2.3` would replace our torch, so it is installed with `--no-deps`, next to our torch version
and the few modules its command-line tools import.

Both toolkits read the same subword tokens (our Multi30k en→de BPE, written out as text for OpenNMT-py)
and train the same model: 1-layer bidirectional LSTM encoder (256 per direction), 1-layer LSTM
decoder of 512, Luong general attention with input feeding, embeddings 256, untied, dropout 0.3,
Adam (lr 1e-3), gradient norm clipped at 5, about 64 sentences per update, on the first
steps × 64 training pairs (one pass). seqforge trains as the pipeline does (Ray Train, one worker with 2 CPUs
as `num_workers: auto` places it, `--workers 2` for 2 × 1; `train.precision: auto`, `--precision`; token-budget
batches sized to 64 sentences per update); OpenNMT-py as its CLI does (one
process, 2 threads, 64-sentence batches; loader settings that keep its data workers off the two
cores, see `onmt_config`). Rounds alternate which toolkit goes first. Tokens/s: source subwords
and target subwords (with EOS in training, as OpenNMT-py counts them) per second of training steps
(OpenNMT-py: its step reports after the first; seqforge: the epoch's training time); model loading and
process start are excluded. The wall-time columns divide the same corpus tokens by each
toolkit's seconds for the same updates (OpenNMT-py: its elapsed seconds at the last step, warm-up window
included; seqforge: the epoch's training seconds), so neither toolkit's token counting convention enters.

Decoding: each toolkit's model beam-decodes test_2016_flickr (beam 5, no length penalty, batches of 64
sentences, 2 threads; seqforge in float32 and in bfloat16, `decode.precision: bf16`) twice: with its own
length limits (the two models write different lengths: target tok/s) and with every output exactly
`FIXED` tokens long (EOS banned before, every hypothesis ends there), the same work for both whatever
their weights (tokens/s and ms per decoder step). OpenNMT-py's `-precision int8` is not a row: 3.5.1
compares the option's string with `torch.int8` and decodes in float32 (the same output, the same time).
`--decode-only` decodes the checkpoints the last training round left (`onmt_model_step_<steps>.pt`, the
newest Ray checkpoint under runs/bench/opennmt/ray); `--profile` adds one profiled pass of each fixed-length
decoding (torch.profiler, OpenNMT-py's in its own venv) and a table of the ops taking the most self CPU time.
The tables' figures go to reports/peer/speed-<steps>.json.

`--minutes M` (time to BLEU): on full Multi30k en→de with the same BPE, OpenNMT-py trains its recipe at the
configuration above (64-sentence batches, Adam 1e-3 constant, dropout 0.3, no validation) until its own
elapsed-seconds counter passes M minutes, saving a checkpoint every `--every` updates; each checkpoint
is beam-5 decoded on test_2016_flickr afterwards (the BLEU-vs-minutes points). seqforge trains its default
`gru_bahdanau` through the real stages (`dvc repro evaluate@…`, in a scratch copy of this checkout under
runs/bench/opennmt/repo, `train.budget` = each `--ours-at` minutes, default M): test BLEU is its evaluate
stage's (beam 5, GNMT length penalty), its points along the way the validation BLEU (greedy) of each
evaluation with the elapsed time the stage printed (counted from the training's start, Ray workers'
start-up included; OpenNMT-py's from its first update). Both outputs are scored by the task's own metric
(sacreBLEU on detokenized text against the same references, cased and lowercased, chrF). The table and
the points go to reports/peer/time_to_bleu-<M>m.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from bench.opennmt_side import (
    FIXED,
    SENTENCES,
    THREADS,
    WORK,
    ensure_peer,
    onmt_decode,
    onmt_for_minutes,
    onmt_points,
    run_onmt,
    write_corpus,
)
from bench.seqforge_side import (
    batch_tokens_for,
    run_seqforge,
    scratch_checkout,
    seqforge_decode,
    seqforge_for_minutes,
)
from seqforge.training.worker.precision import resolved


def time_to_bleu(args: argparse.Namespace, bin_dir: Path) -> None:
    """OpenNMT-py's recipe and seqforge's default GRU for the same minutes each; test BLEU and the points."""
    repo, log = scratch_checkout()
    sizes = write_corpus(None, repo)
    Console(stderr=True).print(f"OpenNMT-py for {args.minutes:g} minutes …")
    seconds_at, last = onmt_for_minutes(bin_dir, args.minutes, args.every)
    onmt = onmt_points(bin_dir, seconds_at, args.minutes, args.every, sizes)
    Console(stderr=True).print(f"seqforge gru_bahdanau for {', '.join(f'{m:g}' for m in args.ours_at)} minutes …")
    ours = seqforge_for_minutes(repo, log, args.ours_at)

    table = Table(
        title=f"Time to BLEU: Multi30k en→de, same BPE, test_2016_flickr ({len(sizes['test_refs']):,} "
        "sentences), beam 5, sacreBLEU on detokenized text, 2 CPU threads"
    )
    for column in ("toolkit", "model", "budget", "trained", "updates", "test BLEU", "lc BLEU", "chrF"):
        table.add_column(column, justify="left" if column in ("toolkit", "model") else "right")
    final = onmt[-1]
    table.add_row(
        "OpenNMT-py 3.5.1",
        "peer_lstm (recipe)",
        f"{args.minutes:g} min",
        f"{final['minutes']:.1f} min",
        f"{final['update']:,}",
        f"{final['bleu']:.2f}",
        f"{final['bleu_lc']:.2f}",
        f"{final['chrf']:.2f}",
    )
    for row in ours:
        table.add_row(
            "seqforge",
            "gru_bahdanau (default)",
            f"{row['budget_minutes']:g} min",
            f"{row['trained_minutes']:.1f} min",
            f"{row['updates']:,}",
            f"{row['test_bleu']:.2f}",
            f"{row['test_bleu_lc']:.2f}",
            f"{row['test_chrf']:.2f}",
        )
    points = Table(
        title="BLEU along the way (OpenNMT-py: each saved checkpoint on test, beam 5; seqforge: each "
        "evaluation on validation, greedy)"
    )
    for column in ("toolkit", "minutes", "update", "BLEU", "split, search"):
        points.add_column(column, justify="left" if column in ("toolkit", "split, search") else "right")
    for name, rows in (
        ("OpenNMT-py 3.5.1", onmt),
        *((f"seqforge {r['budget_minutes']:g} min", r["points"]) for r in ours),
    ):
        for point in rows:
            points.add_row(
                name,
                f"{point['minutes']:.1f}",
                f"{point['update']:,}",
                f"{point['bleu']:.2f}",
                f"{point['split']}, {point['search']}",
            )
    console = Console(width=140)
    console.print(table)
    console.print(points)
    out = Path("reports/peer") / f"time_to_bleu-{args.minutes:g}m.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "minutes": args.minutes,
                "torch": torch.__version__,
                "cpus": os.cpu_count(),
                "opennmt": {"last_update": last, "points": onmt},
                "seqforge": ours,
            },
            indent=2,
        )
        + "\n"
    )
    console.print(f"written: {out}")


def speed(args: argparse.Namespace, bin_dir: Path) -> None:
    """Training (unless `args.decode_only`) and beam-5 decoding tokens/s of both toolkits at the peer
    configuration, `args.rounds` A/B rounds."""
    sizes = write_corpus(args.steps)
    budget = batch_tokens_for(SENTENCES / args.workers)  # 64 sentences per update over the workers
    toolkits = {
        "OpenNMT-py 3.5.1": (
            lambda: run_onmt(bin_dir, args.steps),
            {"float32": lambda: onmt_decode(bin_dir, args.steps, sizes, args.profile)},
        ),
        "seqforge": (
            lambda: run_seqforge(sizes, budget, args.workers, args.precision),
            {
                "float32": lambda: seqforge_decode(sizes, "32", args.profile),
                "bfloat16": lambda: seqforge_decode(sizes, "bf16", args.profile),
            },
        ),
    }
    trained: dict[str, list[dict]] = {name: [] for name in toolkits}
    decoded: dict[tuple[str, str], list[dict]] = {(name, p): [] for name, (_, ds) in toolkits.items() for p in ds}
    for r in range(args.rounds):
        for name in list(toolkits) if r % 2 == 0 else list(toolkits)[::-1]:
            train, decoders = toolkits[name]
            Console(stderr=True).print(f"round {r + 1}: {name} …")
            if not args.decode_only:
                trained[name].append(train())
            for precision, decode in decoders.items():
                decoded[name, precision].append(decode())
    console = Console(width=160)
    if not args.decode_only:
        console.print(training_table(trained, sizes, args))
    console.print(decoding_table(decoded, sizes))
    if args.profile:
        console.print(profile_table({key: runs[-1]["ops"] for key, runs in decoded.items()}))
    out = Path("reports/peer") / f"speed-{args.steps}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    ours = {"workers": args.workers, "threads_per_worker": 2 // args.workers}
    report = {"steps": args.steps, "torch": torch.__version__, "cpus": os.cpu_count(), "fixed_tokens": FIXED}
    report |= {"seqforge_training": ours | {"precision": resolved(args.precision, False)}, "training": trained}
    report["decoding"] = {f"{name}, {precision}": runs for (name, precision), runs in decoded.items()}
    out.write_text(json.dumps(report, indent=2) + "\n")
    console.print(f"written: {out}")


def profile_table(ops: dict[tuple[str, str], dict[str, float]], top: int = 12) -> Table:
    """The ops that take the most self CPU time in each toolkit's profiled `FIXED`-token decoding: ms and share."""
    table = Table(title=f"Where beam-5 decoding spends its time ({FIXED}-token outputs, torch.profiler, self CPU)")
    table.add_column("op")
    for name, precision in ops:
        table.add_column(f"{name}, {precision}", justify="right")
    totals = {key: sum(per_op.values()) for key, per_op in ops.items()}
    names = sorted(
        {op for per_op in ops.values() for op in per_op},
        key=lambda op: -max(per_op.get(op, 0.0) / totals[key] for key, per_op in ops.items()),
    )
    for op in names[:top]:
        table.add_row(
            op,
            *(
                f"{per_op.get(op, 0.0) / 1000:,.0f} ms ({per_op.get(op, 0.0) / totals[key]:.0%})"
                for key, per_op in ops.items()
            ),
        )
    table.add_row("total", *(f"{totals[key] / 1000:,.0f} ms" for key in ops), style="bold")
    return table


def training_table(trained: dict[str, list[dict]], sizes: dict, args: argparse.Namespace) -> Table:
    """Training tokens/s per toolkit and round, means and seqforge's ratio."""
    columns = ("train_src", "train_tgt", "wall_s", "wall_tgt")
    for run in (r for rs in trained.values() for r in rs):
        run["wall_tgt"] = sizes["train_tgt"] / run["wall_s"]
    table = Table(
        title=f"Training: Multi30k en→de, LSTM + Luong general + input feeding, {args.steps} steps × "
        f"{SENTENCES} sentences, 2 CPU threads (seqforge: {args.workers} Ray Train worker(s), "
        f"precision {args.precision})"
    )
    for col in (
        "toolkit",
        "run",
        "train src tok/s",
        "train tgt tok/s",
        f"wall s, {args.steps} updates",
        "tgt tok/s by wall",
    ):
        table.add_column(col, justify="left" if col in ("toolkit", "run") else "right")
    means = {name: {c: statistics.mean(run[c] for run in rs) for c in columns} for name, rs in trained.items()}
    for name, rs in trained.items():
        for i, run in enumerate(rs, 1):
            table.add_row(name, str(i), *(f"{run[c]:,.0f}" for c in columns))
        table.add_row(name, "mean", *(f"{means[name][c]:,.0f}" for c in columns), style="bold")
    ours, peer = means["seqforge"], means["OpenNMT-py 3.5.1"]
    table.add_row("seqforge ÷ OpenNMT-py", "", *(f"{ours[c] / peer[c]:.2f}×" for c in columns), style="bold")
    return table


def decoding_table(decoded: dict[tuple[str, str], list[dict]], sizes: dict) -> Table:
    """Beam-5 decoding per toolkit, precision and round, means, and each mean's ratio to OpenNMT-py's."""
    table = Table(
        title=f"Beam-5 decoding of {sizes['test_sents']:,} test sentences, batches of {SENTENCES}, "
        f"{THREADS} CPU threads: each model's own lengths, and every output {FIXED} tokens (same work)"
    )
    for col in (
        "toolkit",
        "precision",
        "run",
        "tgt tok/s",
        f"{FIXED}-token tok/s",
        "ms per step",
        f"{FIXED}-token ÷ OpenNMT-py",
    ):
        table.add_column(col, justify="left" if col in ("toolkit", "precision", "run") else "right")
    peer = statistics.mean(run["fixed_tok_s"] for run in decoded["OpenNMT-py 3.5.1", "float32"])
    for (name, precision), runs in decoded.items():
        rows = [(str(i), run) for i, run in enumerate(runs, 1)]
        rows.append(
            ("mean", {c: statistics.mean(run[c] for run in runs) for c in ("tgt_tok_s", "fixed_tok_s", "step_ms")})
        )
        for label, run in rows:
            table.add_row(
                name,
                precision,
                label,
                f"{run['tgt_tok_s']:,.0f}",
                f"{run['fixed_tok_s']:,.0f}",
                f"{run['step_ms']:.1f}",
                f"{run['fixed_tok_s'] / peer:.2f}×",
                style="bold" if label == "mean" else None,
            )
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--steps", type=int, default=200, help="updates of 64 sentences (one pass over steps × 64 pairs)"
    )
    parser.add_argument("--rounds", type=int, default=2, help="A/B rounds; the first toolkit alternates")
    parser.add_argument("--peer-venv", type=Path, default=Path("runs/bench/opennmt-venv"))
    parser.add_argument(
        "--workers",
        type=int,
        choices=[1, 2],
        default=1,
        help="seqforge's Ray Train workers: 1 × 2 CPUs (`num_workers: auto`, one per node), or 2 × 1 CPU",
    )
    parser.add_argument(
        "--precision",
        choices=["auto", "fp32", "bf16-mixed"],
        default="auto",
        help="seqforge's train.precision (auto: bf16-mixed on a CPU with native bf16); OpenNMT-py trains in fp32",
    )
    parser.add_argument(
        "--decode-only",
        action="store_true",
        help="decode the checkpoints the last round of training left, without training",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also profile each toolkit's fixed-length decoding (torch.profiler), ops side by side",
    )
    parser.add_argument("--minutes", type=float, help="time to BLEU: each toolkit's recipe for this many minutes")
    parser.add_argument(
        "--ours-at",
        type=float,
        action="append",
        help="with --minutes: seqforge's budgets in minutes (repeat; default: --minutes)",
    )
    parser.add_argument("--every", type=int, default=400, help="with --minutes: OpenNMT-py's updates per checkpoint")
    args = parser.parse_args()

    WORK.mkdir(parents=True, exist_ok=True)
    bin_dir = ensure_peer(args.peer_venv)
    if args.minutes is None:
        speed(args, bin_dir)
        return
    args.ours_at = args.ours_at or [args.minutes]
    time_to_bleu(args, bin_dir)


if __name__ == "__main__":
    main()
