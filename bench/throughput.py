"""Training and beam-decoding throughput per model family, with peak memory.

    python -m bench.throughput [--budgets 3000 6000] [--threads 1] [--device cpu|cuda]

Each (experiment, budget) cell runs in its own process so peak memory is its own. Models are the
default-profile experiments from conf/experiments/ at a fixed vocabulary; batches are synthetic
Multi30k-shaped (source and target lengths 8-20 subwords). Decoding is beam 5 over 64 sentences
with EOS banned, so each hypothesis is as long as its source: the cost of search, not of weights.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import time
from concurrent.futures import ProcessPoolExecutor

import torch
import torch.nn.functional as F
from rich.console import Console
from rich.table import Table

from seqforge.data.batching import pad
from seqforge.data.tokenizer import BOS, EOS, PAD
from seqforge.experiments.config import load_experiment
from seqforge.inference.decoding import beam_search, max_lengths
from seqforge.models.base import Seq2Seq
from seqforge.models.registry import build_model, count_parameters

EXPERIMENTS = ("gru_bahdanau", "lstm_luong", "transformer")


class NoEOS(Seq2Seq):
    """Bans EOS so every hypothesis runs to its length cap: decode cost independent of weights."""

    def __init__(self, model: Seq2Seq) -> None:
        super().__init__()
        self.model, self.max_decode_steps = model, model.max_decode_steps

    def encode(self, src, src_lens):
        return self.model.encode(src, src_lens)

    def decode_step(self, prev, state):
        logp, state = self.model.decode_step(prev, state)
        logp[:, EOS] = float("-inf")
        return logp, state

    def reorder_state(self, state, index, sentences=None):
        return self.model.reorder_state(state, index, sentences)


def synthetic_batch(budget: int, vocab: int, gen: torch.Generator) -> dict:
    """Sentences of 8-20 subwords until `budget` padded source+target tokens are used."""
    rows_src, rows_tgt = [], []
    while (len(rows_src) + 1) * 2 * 22 <= budget:
        n = int(torch.randint(8, 21, (1,), generator=gen))
        rows_src.append(torch.randint(5, vocab, (n,), generator=gen).tolist() + [EOS])
        rows_tgt.append(torch.randint(5, vocab, (n + 1,), generator=gen).tolist())
    return {
        "src": pad(rows_src),
        "src_lens": torch.tensor([len(r) for r in rows_src]),
        "tgt_in": pad([[BOS] + r for r in rows_tgt]),
        "tgt_out": pad([r + [EOS] for r in rows_tgt]),
    }


def measure(name: str, budget: int, vocab: int, threads: int, device: str, steps: int) -> tuple:
    """(parameters, sentences per batch, train tok/s, decode tok/s, peak MiB) of one cell."""
    torch.set_num_threads(threads)
    gen = torch.Generator().manual_seed(0)
    model = build_model(load_experiment(name).model, vocab, vocab).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    batches = [{k: v.to(device) for k, v in synthetic_batch(budget, vocab, gen).items()} for _ in range(3)]
    autocast = torch.autocast(device, dtype=torch.bfloat16, enabled=device == "cuda")

    def train_step(batch: dict) -> None:
        with autocast:
            logits = model(batch["src"], batch["src_lens"], batch["tgt_in"])
            loss = F.cross_entropy(logits.flatten(0, 1).float(), batch["tgt_out"].flatten(), ignore_index=PAD)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    model.train()
    train_step(batches[0])  # warm-up
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    sync()
    tokens, start = 0, time.perf_counter()
    for i in range(steps):
        batch = batches[i % len(batches)]
        train_step(batch)
        tokens += int((batch["tgt_out"] != PAD).sum() + batch["src_lens"].sum())
    sync()
    train_tps = tokens / (time.perf_counter() - start)

    decoder = NoEOS(model.eval())
    batch = batches[0]
    src, lens = batch["src"][:64], batch["src_lens"][:64]
    limit = max_lengths(lens, 1.0, 1)  # target length ~ source length, EOS at the cap
    with autocast:
        beam_search(decoder, src, lens, limit, beam_size=5)  # warm-up
        sync()
        start = time.perf_counter()
        hyps = beam_search(decoder, src, lens, limit, beam_size=5)
        sync()
    decode_tps = sum(len(h[0].tokens) + 1 for h in hyps) / (time.perf_counter() - start)
    peak = (
        torch.cuda.max_memory_allocated()
        if device == "cuda"
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    )
    return count_parameters(model), batch["src"].size(0), train_tps, decode_tps, peak / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--experiments", nargs="+", default=list(EXPERIMENTS))
    parser.add_argument("--budgets", nargs="+", type=int, default=[3000, 6000])
    parser.add_argument("--vocab", type=int, default=8000)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (Ray gives each CPU worker 1)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=6)
    args = parser.parse_args()

    table = Table(title=f"seqforge throughput — {args.device}, {args.threads} thread(s), vocab {args.vocab}")
    for col in (
        "experiment",
        "params (M)",
        "batch tokens",
        "sentences",
        "train tok/s",
        "beam-5 decode tok/s",
        "peak mem (MiB)",
    ):
        table.add_column(col, justify="right" if col != "experiment" else "left")
    for name in args.experiments:
        for budget in args.budgets:  # a process per cell: its peak memory is its own
            with ProcessPoolExecutor(1, mp_context=mp.get_context("spawn")) as pool:
                params, sents, train_tps, decode_tps, peak = pool.submit(
                    measure, name, budget, args.vocab, args.threads, args.device, args.steps
                ).result()
            table.add_row(
                name,
                f"{params / 1e6:.1f}",
                str(budget),
                str(sents),
                f"{train_tps:,.0f}",
                f"{decode_tps:,.0f}",
                f"{peak:,.0f}",
            )
    Console(width=130).print(table)


if __name__ == "__main__":
    main()
