"""Decoding speed and quality of one registered model: our PyTorch beam search against CTranslate2 (float32, int8).

    python -m bench.inference --model translation-en-de@champion [--threads 1 --threads 2] [--latency 200]
    python -m bench.inference --model-dir models/gru_bahdanau --baseline-rev 245f959

The model comes from the registry (NAME@ALIAS or NAME/VERSION, the store `seqforge` uses) or an exported model
directory; its task's tokenized test split must be here (the export's checks). Backends: PyTorch (the model's own
weights, in float32 and in bfloat16: `decode.precision: bf16`) and, for a Transformer, CTranslate2 with float32 and
int8 weights converted on the fly (`seqforge.export.ct2`, what `seqforge export` registers). Each backend and thread
count decodes the whole test split in batches of 64 sentences (tokens/s: output subwords, EOS excluded, per second;
test BLEU/chrF with the task's metric) and the first `--latency` sentences one at a time (p50/p99 ms per sentence),
with the decoding settings the model is registered with (beam 5 by default). `--baseline-rev REV` adds our PyTorch
search as it was at git revision REV (its `inference/decoding.py`, same model and predictor). Each (backend,
threads) runs in a fresh process with `OMP_NUM_THREADS` set, so no backend runs after another in the same process.
`agree` is the share of test sentences whose output is token for token PyTorch's (float32). The last lines are
tokens/s ratios at the highest thread count: PyTorch bfloat16 / float32, PyTorch / PyTorch at REV, and last
CTranslate2-int8 / PyTorch. Figures go to reports/inference/<model>.json.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import types
from contextlib import nullcontext
from pathlib import Path
from unittest import mock

import torch
from rich.console import Console
from rich.table import Table

from seqforge.config.shared import DecodeCfg
from seqforge.inference.predictor import Predictor
from seqforge.tasks.registry import load_task, task_kind

OUT = Path("reports/inference")


def registered_dir(model: str, dst: Path) -> tuple[Path, DecodeCfg]:
    """The exported model directory inside registered version `model` (downloaded to `dst`) and its decoding
    settings."""
    import mlflow

    from seqforge.export.versions import download_version, source_version
    from seqforge.tracking.client import tracking_uri

    mlflow.set_tracking_uri(tracking_uri())
    model_dir, config = download_version(source_version(mlflow.MlflowClient(), model), dst)
    return model_dir, DecodeCfg.model_validate(config["decode"])


def backends(model_dir: Path, meta: dict, work: Path) -> dict[str, tuple[Path, str]]:
    """name -> (model directory, decoding precision) of each backend to measure: PyTorch in float32 and
    bfloat16, and for a Transformer CTranslate2 with float32 and int8 weights (exported into `work`)."""
    from seqforge.export.versions import write_export

    found = {"pytorch": (model_dir, "32"), "pytorch-bf16": (model_dir, "bf16")}
    if meta["experiment"]["model"]["arch"] != "transformer":
        return found
    torch_predictor = Predictor.from_dir(model_dir, meta, DecodeCfg(device="cpu"))
    for quantization in ("float32", "int8"):
        write_export(torch_predictor, meta, work / quantization, "ct2", quantization)
        found[f"ctranslate2-{quantization}"] = (work / quantization, "32")
    return found


def search_at(rev: str):
    """A context in which `Predictor` searches with `inference/decoding.py` as it was at git revision `rev` of
    the repository this file is in."""
    from seqforge.inference import predictor

    source = subprocess.run(
        ["git", "show", f"{rev}:src/seqforge/inference/decoding.py"],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[1],
    ).stdout
    module = sys.modules[f"decoding_at_{rev}"] = types.ModuleType(f"decoding_at_{rev}")  # dataclasses look it up
    exec(compile(source, f"{rev}:decoding.py", "exec"), module.__dict__)  # our own file at a revision

    def normalised(search):  # models' `decode_step` returned log-probabilities before it returned logits
        known = inspect.signature(search).parameters  # options added since (patience) stay out
        return lambda model, *args, **kwargs: search(
            LogProbs(model), *args, **{key: value for key, value in kwargs.items() if key in known}
        )

    return mock.patch.multiple(
        predictor, beam_search=normalised(module.beam_search), generate=normalised(module.generate)
    )


class LogProbs:
    """A model whose `decode_step` gives log-probabilities (normalising them again changes nothing)."""

    def __init__(self, model) -> None:
        self.model = model

    def __getattr__(self, name: str):
        return getattr(self.model, name)

    def decode_step(self, prev, state):
        logits, state = self.model.decode_step(prev, state)
        return logits.log_softmax(-1), state


def measure(predictor: Predictor, src_ids: list, refs: list[str], task, decode: DecodeCfg, latency: int) -> dict:
    """Batch-64 tokens/s with test scores, and batch-1 latency percentiles, of one predictor."""
    predictor.generate_ids(src_ids[:64], decode)  # warm-up: first calls allocate
    start = time.perf_counter()
    nbest = predictor.generate_ids(src_ids, decode)
    seconds = time.perf_counter() - start
    hyps = [n[0] for n in nbest]
    scores = task_kind(task.kind).scores(predictor.tokenizer.decode(hyps, "target"), refs, task.model_dump())
    one = decode.model_copy(update={"batch_size": 1})
    times = []
    for ids in src_ids[:latency]:
        start = time.perf_counter()
        predictor.generate_ids([ids], one)
        times.append(1000 * (time.perf_counter() - start))
    times.sort()
    return {
        "tokens_per_s": sum(len(h) for h in hyps) / seconds,
        "sentences_per_s": len(hyps) / seconds,
        "bleu": scores["bleu"],
        "chrf": scores["chrf"],
        "p50_ms": statistics.median(times),
        "p99_ms": times[min(len(times) - 1, round(0.99 * (len(times) - 1)))],
        "hyps": hyps,
    }


def one_run(directory: Path, threads: int, decode: DecodeCfg, latency: int, rev: str | None) -> dict:
    """`measure` of the predictor in `directory` with `threads` threads (in this process), at revision `rev`'s
    search when given."""
    from datasets import load_from_disk

    from seqforge.core import paths

    torch.set_num_threads(threads)  # CTranslate2 takes torch's thread count (CT2Predictor.from_dir)
    task = load_task(Predictor.read_meta(directory)["task"]["name"])
    test = load_from_disk(str(paths.tokenized_dir(task.name)))["test"]
    predictor = Predictor.load(directory, decode)
    with search_at(rev) if rev else nullcontext():
        return measure(predictor, test["src_ids"], test["target"], task, decode, latency)


def in_child(directory: Path, threads: int, decode: DecodeCfg, latency: int, rev: str | None) -> dict:
    """`one_run` in a fresh process."""
    cmd = [
        sys.executable,
        "-m",
        "bench.inference",
        "--one",
        str(directory),
        str(threads),
        decode.model_dump_json(),
        "--latency",
        str(latency),
        *(["--baseline-rev", rev] if rev else []),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONWARNINGS": "ignore"}
    child = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if child.returncode:
        sys.exit(f"{directory}, {threads} thread(s) failed:\n{child.stderr[-2000:]}")
    return json.loads(child.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", help="registered NAME@ALIAS or NAME/VERSION")
    source.add_argument("--model-dir", type=Path, help="an exported model directory (models/<experiment>)")
    source.add_argument("--one", nargs=3, metavar=("DIR", "THREADS", "DECODE"), help=argparse.SUPPRESS)  # a child
    parser.add_argument("--threads", type=int, action="append", help="CPU threads (repeat; default: 1 and 2)")
    parser.add_argument("--latency", type=int, default=200, help="sentences decoded one at a time for latency")
    parser.add_argument("--baseline-rev", help="also our PyTorch search as of this git revision")
    args = parser.parse_args()
    if args.one:
        directory, threads, decode = args.one
        print(
            json.dumps(
                one_run(
                    Path(directory),
                    int(threads),
                    DecodeCfg.model_validate_json(decode),
                    args.latency,
                    args.baseline_rev,
                )
            )
        )
        return
    from datasets import load_from_disk

    from seqforge.core import paths
    from seqforge.export.versions import check_test_split

    with tempfile.TemporaryDirectory(prefix="seqforge-bench-") as tmp:
        work = Path(tmp)
        model_dir, decode = registered_dir(args.model, work) if args.model else (args.model_dir, None)
        meta = Predictor.read_meta(model_dir)
        task = load_task(meta["task"]["name"])
        decode = (decode or task.decode).model_copy(update={"device": "cpu", "batch_size": 64})
        check_test_split(task, meta, args.model or str(model_dir), model_dir)
        test = load_from_disk(str(paths.tokenized_dir(task.name)))["test"]
        runs = [
            (name, directory, precision, None)
            for name, (directory, precision) in backends(model_dir, meta, work).items()
        ]
        if args.baseline_rev:
            runs.insert(1, (f"pytorch@{args.baseline_rev}", model_dir, "32", args.baseline_rev))
        rows = []
        for threads in args.threads or [1, 2]:
            for name, directory, precision, rev in runs:
                Console(stderr=True).print(f"{name}, {threads} thread(s) …")
                rows.append(
                    {
                        "backend": name,
                        "threads": threads,
                        **in_child(
                            directory, threads, decode.model_copy(update={"precision": precision}), args.latency, rev
                        ),
                    }
                )
    reference = {r["threads"]: r["hyps"] for r in rows if r["backend"] == "pytorch"}
    for row in rows:
        row["agree"] = sum(a == b for a, b in zip(row.pop("hyps"), reference[row["threads"]], strict=True)) / len(test)

    label = args.model or str(args.model_dir)
    table = Table(
        title=f"{label}: {meta['experiment']['name']} on {task.name} test ({len(test):,} sentences), "
        f"beam {decode.beam_size}, length penalty {decode.length_penalty}"
    )
    for column in (
        "backend",
        "threads",
        "batch 64 tok/s",
        "sent/s",
        "batch 1 p50 ms",
        "p99 ms",
        "BLEU",
        "chrF",
        "agree",
    ):
        table.add_column(column, justify="left" if column == "backend" else "right")
    for r in rows:
        table.add_row(
            r["backend"],
            str(r["threads"]),
            f"{r['tokens_per_s']:,.0f}",
            f"{r['sentences_per_s']:.1f}",
            f"{r['p50_ms']:.1f}",
            f"{r['p99_ms']:.1f}",
            f"{r['bleu']:.2f}",
            f"{r['chrf']:.2f}",
            f"{r['agree']:.1%}",
        )
    console = Console(width=140)
    console.print(table)
    OUT.mkdir(parents=True, exist_ok=True)
    out = OUT / f"{label.replace('/', '_').replace('@', '_')}.json"
    out.write_text(
        json.dumps(
            {
                "model": label,
                "experiment": meta["experiment"]["name"],
                "decode": decode.model_dump(),
                "sentences": len(test),
                "rows": rows,
            },
            indent=2,
        )
        + "\n"
    )
    console.print(f"written: {out}")
    top = max(r["threads"] for r in rows)
    speed = {r["backend"]: r["tokens_per_s"] for r in rows if r["threads"] == top}
    ratios = [("pytorch-bf16", "pytorch"), ("pytorch", f"pytorch@{args.baseline_rev}"), ("ctranslate2-int8", "pytorch")]
    for faster, slower in ratios:
        if faster in speed and slower in speed:
            print(f"{faster}/{slower} beam-{decode.beam_size} tokens/s ratio {speed[faster] / speed[slower]:.2f}")


if __name__ == "__main__":
    main()
