"""bf16 mixed precision against fp32 per model family: the training step, the share of this machine's own GEMM
peak it achieves, and where its time goes that is not a matrix product.

    python -m bench.precision [--experiment gru_bahdanau ...] [--steps 20] [--threads 2]

Needs the translation task tokenized (`dvc repro tokenize@translation`). In one invocation, each part in a
fresh process with the same threads:
- the machine's GEMM peak in fp32 and in bf16: the best of a few large matrix products (`a @ b` in a loop),
  measured first and last;
- per experiment (default: the three default translation models) and precision (fp32; bf16-mixed: the
  trainer's autocast, `seqforge.training.worker.precision`): `--steps` AdamW updates after 3 untimed ones
  on the same 120-sentence Multi30k batches (`bench.compile_step.training_batches`), the median step and
  target tokens/s; the step's floating-point operations counted by `torch.utils.flop_counter.FlopCounterMode`
  (matrix products and attention, as every MFU figure counts them; oneDNN's fused LSTM layer, which it has
  no formula for, by `rnn_layer_flops`), so achieved GFLOP/s and its share of the precision's GEMM peak;
  and one profiled pass of 6 steps, its self CPU time grouped by what the ops do (`GROUPS`).

Prints the table and, as its last line, `bf16-mixed/fp32 training step ratio gru_bahdanau R`; writes
`reports/precision/bf16-<date>.json` (`fp32only-<date>.json` on a CPU without native bf16).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import torch

WARM, PROFILED = 3, 6
PEAK_SHAPES = ((2048, 512, 2048), (2280, 256, 6000), (4096, 1024, 1024))  # (m, k, n)
GROUPS = {  # what an op does -> the names the profiler gives it (self time; the rest is "elementwise, other")
    "matrix products": ("mm", "addmm", "bmm", "baddbmm", "matmul", "linear", "mkldnn_rnn_layer"),
    "casts": ("copy_", "_to_copy", "to"),
    "loss (log-softmax)": ("_log_softmax", "_log_softmax_backward_data", "nll_loss", "nll_loss_forward"),
    "dropout masks": ("uniform_", "bernoulli_", "native_dropout"),
    "data movement": ("fill_", "zero_", "cat", "stack", "index", "gather", "scatter_add_", "embedding_dense_backward"),
}
OUT = Path("reports/precision")


def group_of(op: str) -> str:
    """The `GROUPS` entry of a profiler op name (`aten::mm`, `aten::mkldnn_rnn_layer_backward`, ...)."""
    name = op.removeprefix("aten::")
    for group, names in GROUPS.items():
        if any(name == n or name.startswith(n + "_") for n in names):
            return group
    return "elementwise, other"


def gemm_peak(threads: int) -> dict[str, float]:
    """GFLOP/s of the best `PEAK_SHAPES` product, in fp32 and bf16."""
    torch.set_num_threads(threads)
    best = {}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        rates = []
        for m, k, n in PEAK_SHAPES:
            a, b = torch.randn(m, k, dtype=dtype), torch.randn(k, n, dtype=dtype)
            for _ in range(3):
                a @ b
            start, reps = time.perf_counter(), 10
            for _ in range(reps):
                a @ b
            rates.append(2 * m * k * n * reps / (time.perf_counter() - start) / 1e9)
        best[name] = max(rates)
    return best


def rnn_layer_flops() -> None:
    """Teach `FlopCounterMode` oneDNN's fused RNN layer (the CPU's LSTM): the input and recurrent products of every
    gate at every position, 2 · positions · gates × (inputs + hidden); its backward twice that."""
    from math import prod

    from torch.utils.flop_counter import register_flop_formula

    def forward(input_shape, w_ih_shape, w_hh_shape, *args, **kwargs) -> int:
        return 2 * prod(input_shape[:-1]) * w_ih_shape[0] * (w_ih_shape[1] + w_hh_shape[1])

    def backward(input_shape, w_ih_shape, w_hh_shape, *args, **kwargs) -> int:
        return 2 * forward(input_shape, w_ih_shape, w_hh_shape)

    aten = torch.ops.aten
    if hasattr(aten, "mkldnn_rnn_layer"):
        register_flop_formula(aten.mkldnn_rnn_layer)(forward)
        register_flop_formula(aten.mkldnn_rnn_layer_backward)(backward)


def measure(name: str, precision: str, steps: int, threads: int) -> dict:
    """One experiment's training step in `precision`: timed, FLOPs counted, profiled."""
    from torch.utils.flop_counter import FlopCounterMode

    from bench.compile_step import training_batches
    from bench.step_profile import loss_of
    from seqforge.data.tokenizer import PAD
    from seqforge.experiments.config import load_experiment
    from seqforge.models.registry import build_model
    from seqforge.training.worker.precision import autocast

    torch.set_num_threads(threads)
    batches, vocab = training_batches(WARM + steps)
    torch.manual_seed(1)
    model = build_model(load_experiment(name).model, *vocab).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)

    def step(batch: dict) -> None:
        with autocast(precision):  # as Lightning's precision plugin: forward and loss
            loss = loss_of(model(batch["src"], batch["src_lens"], batch["tgt_in"]), batch["tgt_out"], PAD)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for batch in batches[:WARM]:
        step(batch)
    times = []
    for batch in batches[WARM:]:
        start = time.perf_counter()
        step(batch)
        times.append(time.perf_counter() - start)
    rnn_layer_flops()
    counter = FlopCounterMode(display=False)
    with counter:
        for batch in batches[WARM:]:
            step(batch)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        for batch in batches[WARM : WARM + PROFILED]:
            step(batch)
    groups: dict[str, float] = {}
    for event in prof.key_averages():
        groups[group_of(event.key)] = groups.get(group_of(event.key), 0.0) + event.self_cpu_time_total
    total = sum(groups.values())
    tokens = sum(int((b["tgt_out"] != PAD).sum()) for b in batches[WARM:])
    return {
        "step_ms": 1000 * statistics.median(times),
        "tgt_tok_s": tokens / sum(times),
        "gflop_per_step": counter.get_total_flops() / steps / 1e9,
        "gflop_s": counter.get_total_flops() / sum(times) / 1e9,
        "time_shares": {group: t / total for group, t in groups.items()},
    }


def child(args: list[str], threads: int) -> dict:
    """Run this module in a fresh process with `threads` OpenMP threads; its last stdout line as JSON."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONWARNINGS": "ignore"}
    done = subprocess.run(
        [sys.executable, "-m", "bench.precision", "--threads", str(threads), *args],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--experiment", action="append", help="repeatable (default: the three default models)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--peak", action="store_true", help=argparse.SUPPRESS)  # a child: the GEMM peak
    parser.add_argument("--one", nargs=2, metavar=("EXPERIMENT", "PRECISION"), help=argparse.SUPPRESS)  # a child
    args = parser.parse_args()
    if args.peak:
        print(json.dumps(gemm_peak(args.threads)))
        return
    if args.one:
        print(json.dumps(measure(*args.one, args.steps, args.threads)))
        return

    from rich.console import Console
    from rich.table import Table

    from seqforge.training.worker.precision import native_bf16

    names = args.experiment or ["gru_bahdanau", "lstm_luong", "transformer"]
    first = child(["--peak"], args.threads)
    rows = {
        name: {p: child(["--steps", str(args.steps), "--one", name, p], args.threads) for p in ("fp32", "bf16-mixed")}
        for name in names
    }
    last = child(["--peak"], args.threads)  # before and after: the better of the two, should anything interfere
    peak = {dtype: max(first[dtype], last[dtype]) for dtype in first}
    native = native_bf16(False)
    cpu = "native bf16" if native else "bf16 emulated (no AMX / AVX512-BF16)"
    shares = list(GROUPS) + ["elementwise, other"]
    table = Table(
        title=f"Training step, fp32 against bf16-mixed: {args.steps} steps of 120 Multi30k sentences, {args.threads} "
        f"threads, {cpu}; GEMM peak fp32 {peak['fp32']:.0f}, bf16 {peak['bf16']:.0f} GFLOP/s"
    )
    for col in ("experiment", "precision", "step ms", "tgt tok/s", "GFLOP/step", "GFLOP/s", "% of peak", *shares):
        table.add_column(col, justify="left" if col in ("experiment", "precision") else "right")
    for name, by_precision in rows.items():
        for precision, r in by_precision.items():
            table.add_row(
                name,
                precision,
                f"{r['step_ms']:.0f}",
                f"{r['tgt_tok_s']:,.0f}",
                f"{r['gflop_per_step']:.1f}",
                f"{r['gflop_s']:.0f}",
                f"{r['gflop_s'] / peak['fp32' if precision == 'fp32' else 'bf16']:.0%}",
                *(f"{r['time_shares'].get(s, 0):.0%}" for s in shares),
            )
    Console(width=200).print(table)
    OUT.mkdir(parents=True, exist_ok=True)
    out = OUT / f"{'bf16' if native else 'fp32only'}-{date.today()}.json"
    report = {"threads": args.threads, "steps": args.steps, "native_bf16": native, "peak": peak, "rows": rows}
    out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"written: {out}", file=sys.stderr)
    for name in sorted(rows, key=lambda n: n == "gru_bahdanau"):  # the default model's line last
        ratio = rows[name]["fp32"]["step_ms"] / rows[name]["bf16-mixed"]["step_ms"]
        print(f"bf16-mixed/fp32 training step ratio {name} {ratio:.2f}")


if __name__ == "__main__":
    main()
