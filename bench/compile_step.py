"""Does `torch.compile` pay for a training step here? Eager against compiled, per experiment, same batches.

    python -m bench.compile_step [--experiment gru_bahdanau --experiment transformer] [--steps 25] [--threads 2]
    python -m bench.compile_step --profile [--experiment …]   # where an eager step's time goes, op by op

Needs the translation task tokenized (`dvc repro tokenize@translation`). Each experiment's model (its
`model:` section) trains on the same shuffled 120-sentence batches of length-sorted Multi30k pairs (shapes vary
from batch to batch, as in training) with AdamW, `bench.step_profile`'s token cross-entropy and clipping,
once eager and once after `nn.Module.compile(dynamic=True)`, each in a fresh process with the same threads.
The first 5 steps are timed apart (they hold the compilation); then `--steps` steps: their wall time, median step
and target tokens/s.
`--profile`: each experiment's eager step under `torch.profiler` (`bench.step_profile.timed_and_profiled`, 8
of the batches): the ops by self CPU time per step, with calls per step and their costliest input shapes.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time

import torch

SENTENCES, WARM = 120, 5


def training_batches(count: int) -> tuple[list[dict], tuple[int, int]]:
    """`count` batches of `SENTENCES` random Multi30k training pairs (seeded), each batch of similar lengths,
    in shuffled order; and the task's (source, target) vocabulary sizes."""
    from datasets import load_from_disk

    from seqforge.core import paths
    from seqforge.data.batching import collate
    from seqforge.data.datasets import TokenizedSplit
    from seqforge.data.tokenizer import SubwordTokenizer

    tokenizer = SubwordTokenizer.load(paths.tokenizer_file("translation"))
    train = TokenizedSplit(load_from_disk(str(paths.tokenized_dir("translation")))["train"])
    rng = random.Random(0)
    picked = rng.sample(range(len(train)), SENTENCES * count)
    order = sorted(picked, key=lambda i: len(train[i]["src_ids"]))
    chunks = [order[k : k + SENTENCES] for k in range(0, len(order), SENTENCES)]
    rng.shuffle(chunks)
    batches = [collate(train.__getitems__(chunk)) for chunk in chunks]
    return batches, (tokenizer.vocab_size("source"), tokenizer.vocab_size("target"))


def measure(name: str, mode: str, steps: int, threads: int) -> dict:
    """One experiment's model in `mode` (eager, compile, or profile: eager under the profiler): warm-up seconds
    and the timed steps, or the profile."""
    from bench.step_profile import loss_of
    from seqforge.data.tokenizer import PAD
    from seqforge.experiments.config import load_experiment
    from seqforge.models.registry import build_model

    torch.set_num_threads(threads)
    batches, vocab = training_batches(WARM + steps)
    torch.manual_seed(1)
    model = build_model(load_experiment(name).model, *vocab)
    model.train()
    if mode == "compile":
        model.compile(dynamic=True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)

    def step(batch: dict) -> None:
        loss_of(model(batch["src"], batch["src_lens"], batch["tgt_in"]), batch["tgt_out"], PAD).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    if mode == "profile":
        from bench.step_profile import timed_and_profiled

        return timed_and_profiled(step, batches[WARM : WARM + 8], threads)
    start = time.perf_counter()
    for batch in batches[:WARM]:
        step(batch)
    warm = time.perf_counter() - start
    times = []
    for batch in batches[WARM:]:
        start = time.perf_counter()
        step(batch)
        times.append(time.perf_counter() - start)
    tokens = sum(int((b["tgt_out"] != PAD).sum()) for b in batches[WARM:])
    return {
        "warm_s": warm,
        "steps_s": sum(times),
        "median_ms": 1000 * statistics.median(times),
        "tgt_tok_s": tokens / sum(times),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--experiment", action="append", help="repeatable (default: gru_bahdanau, transformer)")
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--profile", action="store_true", help="the ops of an eager step instead")
    parser.add_argument("--top", type=int, default=12, help="with --profile: ops shown per experiment")
    parser.add_argument("--one", nargs=2, metavar=("EXPERIMENT", "MODE"), help=argparse.SUPPRESS)  # a child
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(*args.one, args.steps, args.threads)))
        return

    from rich.console import Console
    from rich.table import Table

    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "PYTHONWARNINGS": "ignore"}
    if args.profile:
        for name in args.experiment or ["gru_bahdanau", "transformer"]:
            child = subprocess.run(
                [sys.executable, "-m", "bench.compile_step", "--threads", str(args.threads), "--one", name, "profile"],
                capture_output=True,
                text=True,
                env=env,
                check=True,
            )
            prof = json.loads(child.stdout.strip().splitlines()[-1])
            table = Table(
                title=f"{name}: one eager training step of {SENTENCES} sentences, {prof['step_ms']:.0f} ms "
                f"(median of {prof['batches']}), {args.threads} threads"
            )
            for col in ("op", "self ms / step", "share", "calls / step", "costliest shapes"):
                table.add_column(col, justify="left" if col in ("op", "costliest shapes") else "right")
            total = sum(op["self_ms"] for op in prof["ops"].values())
            for op, row in sorted(prof["ops"].items(), key=lambda kv: -kv[1]["self_ms"])[: args.top]:
                table.add_row(
                    op,
                    f"{row['self_ms']:.1f}",
                    f"{row['self_ms'] / total:.0%}",
                    f"{row['calls']:.0f}",
                    row.get("shapes", ""),
                )
            Console(width=160).print(table)
        return

    table = Table(
        title=f"torch.compile (dynamic shapes) against eager: {args.steps} training steps of "
        f"{SENTENCES} sentences after {WARM}, {args.threads} threads"
    )
    for col in ("experiment", "mode", f"first {WARM} steps", "timed steps", "median step", "tgt tok/s", "÷ eager"):
        table.add_column(col, justify="left" if col in ("experiment", "mode") else "right")
    for name in args.experiment or ["gru_bahdanau", "transformer"]:
        rows = {}
        for mode in ("eager", "compile"):
            child = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "bench.compile_step",
                    "--steps",
                    str(args.steps),
                    "--threads",
                    str(args.threads),
                    "--one",
                    name,
                    mode,
                ],
                capture_output=True,
                text=True,
                env=env,
                check=False,
            )
            if child.returncode:  # a row that says so: whether compile works at all is part of the answer
                lines = child.stderr.strip().splitlines() or [f"exit {child.returncode}"]
                error = next((line for line in reversed(lines) if "Error" in line), lines[-1])
                table.add_row(name, mode, f"failed: {error[:90]}", "", "", "", "")
                continue
            rows[mode] = r = json.loads(child.stdout.strip().splitlines()[-1])
            table.add_row(
                name,
                mode,
                f"{r['warm_s']:.1f} s",
                f"{r['steps_s']:.1f} s",
                f"{r['median_ms']:.0f} ms",
                f"{r['tgt_tok_s']:,.0f}",
                f"{r['tgt_tok_s'] / rows['eager']['tgt_tok_s']:.2f}×" if "eager" in rows else "",
            )
    Console(width=140).print(table)


if __name__ == "__main__":
    main()
