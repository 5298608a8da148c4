"""One training step of seqforge's model and of OpenNMT-py's, op by op: `torch.profiler` on identical batches.

    python -m bench.step_profile [--batches 8] [--threads 2] [--peer-venv runs/bench/opennmt-venv]

The model is the peer configuration of `bench.peer_opennmt` (bidirectional LSTM encoder 2×256, LSTM decoder
512, Luong general attention, input feeding, embeddings 256, dropout 0.3, Adam 1e-3, clip 5). The batches:
the first `batches` × 64 training pairs of the tokenized Multi30k task, sorted by length and cut into
64-sentence batches (OpenNMT-py's bucketed batching, so both pad alike); OpenNMT-py reads the same subword
tokens through its own vocabulary. Each side runs in a fresh process with the same environment and threads
(OpenNMT-py in its venv, built by `bench.peer_opennmt`, from a checkpoint its `onmt_train` wrote after a few steps):
two untimed passes, then a timed pass (wall time per step) and a profiled one. A step is what each
toolkit's trainer does: forward, output layer over every target position, token cross-entropy (sum over
non-pad tokens, divided by them), backward, gradient clipping, Adam.

Prints the wall time per step side by side and the ops by self CPU time per step (and calls per step),
the top ones of either side; writes `reports/profile/step_profile.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

SENTENCES = 64
OUT = Path("reports/profile/step_profile.json")


def timed_and_profiled(step, batches: list, threads: int) -> dict:
    """Wall ms per step (median over a pass) and the profiler's per-op self CPU time per step."""
    import statistics

    torch.set_num_threads(threads)
    for _ in range(2):  # allocator, caches, lazy inits
        for batch in batches:
            step(batch)
    times = []
    for batch in batches:
        start = time.perf_counter()
        step(batch)
        times.append(time.perf_counter() - start)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], record_shapes=True) as prof:
        for batch in batches:
            step(batch)
    n = len(batches)
    ops = {}
    for event in prof.key_averages(group_by_input_shape=False):
        ops[event.key] = {"self_ms": event.self_cpu_time_total / 1000 / n, "calls": event.count / n}
    by_shape = sorted(prof.key_averages(group_by_input_shape=True), key=lambda e: -e.self_cpu_time_total)
    for event in reversed(by_shape):  # each op's costliest input shapes, for the table's rows
        ops[event.key]["shapes"] = str(event.input_shapes)[:60]
    top_shapes = [
        {"op": e.key, "shapes": str(e.input_shapes), "self_ms": e.self_cpu_time_total / 1000 / n, "calls": e.count / n}
        for e in by_shape[:40]
    ]
    return {
        "step_ms": 1000 * statistics.median(times),
        "ops": ops,
        "by_shape": top_shapes,
        "threads": threads,
        "batches": n,
        "torch": torch.__version__,
        "cpu": torch.backends.cpu.get_cpu_capability(),
        "parallel": torch.__config__.parallel_info().splitlines()[:8],
    }


def loss_of(logits: torch.Tensor, gold: torch.Tensor, pad: int) -> torch.Tensor:
    """Token cross-entropy: summed over non-pad tokens, divided by them (both toolkits' normalisation)."""
    flat = torch.log_softmax(logits.flatten(0, 1).float(), dim=-1)
    keep = gold.flatten() != pad
    return torch.nn.functional.nll_loss(flat, gold.flatten(), ignore_index=pad, reduction="sum") / keep.sum()


def peer_side(batches_file: Path, checkpoint: Path, out: Path, threads: int) -> None:
    """In OpenNMT-py's venv: its model from `checkpoint`, the batches' tokens through its vocabulary."""
    from argparse import Namespace

    from onmt.model_builder import load_test_model

    vocabs, model, _ = load_test_model(
        Namespace(
            models=[str(checkpoint)],
            gpu=-1,
            world_size=1,
            gpu_ranks=[],
            parallel_mode="data_parallel",
            quant_type="",
            quant_layers=[],
            precision="fp32",
            fp32=True,
            int8=False,
        ),
        0,
    )
    model.train()
    src_vocab, tgt_vocab = vocabs["src"], vocabs["tgt"]
    pad = tgt_vocab.lookup_token("<blank>")

    def ids(vocab, rows: list[list[str]], bos: bool) -> torch.Tensor:
        rows = [(["<s>"] if bos else []) + row + (["</s>"] if bos else []) for row in rows]
        width = max(len(r) for r in rows)
        return torch.tensor([[vocab.lookup_token(t) for t in r] + [pad] * (width - len(r)) for r in rows])

    batches = [
        {
            "src": ids(src_vocab, b["src"], False).unsqueeze(-1),
            "src_len": torch.tensor([len(r) for r in b["src"]]),
            "tgt": ids(tgt_vocab, b["tgt"], True).unsqueeze(-1),
        }
        for b in torch.load(batches_file)
    ]
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.999))

    def step(batch: dict) -> None:
        dec_out, _ = model(batch["src"], batch["tgt"], batch["src_len"])
        loss = loss_of(model.generator(dec_out), batch["tgt"][:, 1:, 0], pad)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    out.write_text(json.dumps(timed_and_profiled(step, batches, threads)))


def our_side(subset: Path, batches_file: Path, out: Path, threads: int, n: int) -> None:
    """seqforge's model at the peer configuration on the batches; writes them as token strings for the peer."""
    from datasets import load_from_disk

    from bench.peer_opennmt import peer_experiment
    from seqforge.core import paths
    from seqforge.data.batching import collate
    from seqforge.data.datasets import TokenizedSplit
    from seqforge.data.tokenizer import PAD, SubwordTokenizer
    from seqforge.models.registry import build_model

    tokenizer = SubwordTokenizer.load(paths.tokenizer_file("translation"))
    train = TokenizedSplit(load_from_disk(str(subset))["train"])
    order = sorted(range(n * SENTENCES), key=lambda i: (len(train[i]["src_ids"]), len(train[i]["tgt_ids"])))
    chunks = [order[k : k + SENTENCES] for k in range(0, len(order), SENTENCES)]
    batches = [collate(train.__getitems__(chunk)) for chunk in chunks]
    as_tokens = [
        {
            "src": [tokenizer.tokens(train[i]["src_ids"], "source") for i in chunk],
            "tgt": [tokenizer.tokens(train[i]["tgt_ids"], "target") for i in chunk],
        }
        for chunk in chunks
    ]
    exp = peer_experiment()
    torch.manual_seed(1)
    model = build_model(exp.model, tokenizer.vocab_size("source"), tokenizer.vocab_size("target"))
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.999))

    def step(batch: dict) -> None:
        loss = loss_of(model(batch["src"], batch["src_lens"], batch["tgt_in"]), batch["tgt_out"], PAD)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    torch.save(as_tokens, batches_file)
    out.write_text(json.dumps(timed_and_profiled(step, batches, threads)))


def side_env(threads: int) -> dict:
    """Both sides' processes get the same environment: this repository on the path, `threads` OpenMP threads."""
    return {
        "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
        "PATH": "/usr/bin:/bin",
        "HOME": os.environ.get("HOME", "/tmp"),
        "OMP_NUM_THREADS": str(threads),
        "PYTHONWARNINGS": "ignore",
        "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, default=8, help="64-sentence batches, each timed and profiled")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--top", type=int, default=12, help="ops shown: the top ones of either side")
    parser.add_argument("--peer-venv", type=Path, default=Path("runs/bench/opennmt-venv"))
    parser.add_argument(
        "--peer-side", nargs=3, type=Path, metavar=("BATCHES", "CHECKPOINT", "OUT"), help=argparse.SUPPRESS
    )  # how this script runs itself in OpenNMT-py's venv
    parser.add_argument(
        "--our-side", nargs=2, type=Path, metavar=("BATCHES", "OUT"), help=argparse.SUPPRESS
    )  # and in ours, in the same kind of process
    args = parser.parse_args()
    if args.peer_side:
        peer_side(*args.peer_side, args.threads)
        return
    if args.our_side:
        from bench.peer_opennmt import WORK

        our_side(WORK / "tokenized", *args.our_side, args.threads, args.batches)
        return

    from rich.console import Console
    from rich.table import Table

    from bench.peer_opennmt import WORK, ensure_peer, run_onmt_train, write_corpus

    WORK.mkdir(parents=True, exist_ok=True)
    bin_dir = ensure_peer(args.peer_venv)
    write_corpus(max(args.batches, 10))
    checkpoint, _ = run_onmt_train(bin_dir, 10)
    batches, our_out, peer_out = WORK / "profile_batches.pt", WORK / "profile_ours.json", WORK / "profile_peer.json"
    common = ["-m", "bench.step_profile", "--threads", str(args.threads), "--batches", str(args.batches)]
    subprocess.run(
        [sys.executable, *common, "--our-side", str(batches), str(our_out)], check=True, env=side_env(args.threads)
    )
    subprocess.run(
        [str(bin_dir / "python"), *common, "--peer-side", str(batches), str(checkpoint), str(peer_out)],
        check=True,
        env=side_env(args.threads),
    )
    ours, peer = json.loads(our_out.read_text()), json.loads(peer_out.read_text())
    for key in ("torch", "cpu", "parallel"):
        if ours[key] != peer[key]:
            print(f"note: the two processes differ in {key}: {ours[key]} against {peer[key]}", file=sys.stderr)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"seqforge": ours, "OpenNMT-py 3.5.1": peer}, indent=1))

    def top(side: dict) -> list[str]:
        return sorted(side["ops"], key=lambda k: -side["ops"][k]["self_ms"])[: args.top]

    names = list(dict.fromkeys(top(ours) + top(peer)))
    names.sort(key=lambda k: -max(s["ops"].get(k, {}).get("self_ms", 0) for s in (ours, peer)))
    table = Table(
        title=f"One training step, peer LSTM configuration, {args.batches} batches × {SENTENCES} "
        f"sentences, {args.threads} threads: self CPU ms and calls per step"
    )
    for col in ("op", "seqforge ms", "calls", "OpenNMT-py ms", "calls", "ratio", "seqforge shapes"):
        table.add_column(col, justify="left" if col in ("op", "seqforge shapes") else "right")
    for name in names:
        a, b = ours["ops"].get(name, {}), peer["ops"].get(name, {})
        ratio = f"{a['self_ms'] / b['self_ms']:.2f}" if a and b and b["self_ms"] > 0 else ""
        table.add_row(
            name,
            f"{a.get('self_ms', 0):.1f}",
            f"{a.get('calls', 0):.0f}",
            f"{b.get('self_ms', 0):.1f}",
            f"{b.get('calls', 0):.0f}",
            ratio,
            a.get("shapes", ""),
        )
    total = {k: sum(o["self_ms"] for o in s["ops"].values()) for k, s in (("ours", ours), ("peer", peer))}
    table.add_row(
        "all ops (profiled)",
        f"{total['ours']:.1f}",
        "",
        f"{total['peer']:.1f}",
        "",
        f"{total['ours'] / total['peer']:.2f}",
        "",
        style="bold",
    )
    table.add_row(
        "wall per step (timed pass)",
        f"{ours['step_ms']:.1f}",
        "",
        f"{peer['step_ms']:.1f}",
        "",
        f"{ours['step_ms'] / peer['step_ms']:.2f}",
        "",
        style="bold",
    )
    Console(width=160).print(table)
    print(f"written: {OUT}", file=sys.stderr)


if __name__ == "__main__":
    main()
