"""seqforge's side of `bench/peer_opennmt.py`: its model at OpenNMT-py's configuration trained on Ray Train as
the pipeline does, its beam decoding in float32 and bfloat16, and its default GRU trained through the real
stages for a time budget."""

from __future__ import annotations

import os
import re
import sys
import time
from pathlib import Path

import torch

from bench.opennmt_side import FIXED, SENTENCES, THREADS, WORK, decode_figures


def batch_tokens_for(sentences_per_worker: float) -> int:
    """The per-worker token budget whose batches hold `sentences_per_worker` sentences on average."""
    from datasets import load_from_disk

    from seqforge.data.batching import TokenBudgetBatchSampler
    from seqforge.data.datasets import TokenizedSplit

    lengths = TokenizedSplit(load_from_disk(str(WORK / "tokenized"))["train"]).lengths
    low, high = 64, 20_000
    while high - low > 8:
        mid = (low + high) // 2
        batches = list(TokenBudgetBatchSampler(lengths, mid, shuffle=True, seed=0))
        low, high = (mid, high) if len(lengths) / len(batches) < sentences_per_worker else (low, mid)
    return high


def peer_experiment():
    """seqforge's experiment at OpenNMT-py's configuration (`onmt_config`)."""
    from seqforge.experiments.config import experiment_schema

    return experiment_schema().model_validate(
        {
            "name": "peer_lstm",
            "task": "translation",
            "model": {
                "arch": "rnn",
                "cell": "lstm",
                "emb_dim": 256,
                "hidden_dim": 512,
                "enc_hidden_dim": 256,
                "bidirectional": True,
                "attention": "luong_general",
                "input_feeding": True,
                "dropout": 0.3,
                "tied_embeddings": False,
                "shared_embeddings": False,
            },
            "optim": {
                "lr": 1e-3,
                "betas": [0.9, 0.999],
                "schedule": "plateau",
                "warmup_steps": 0,
                "label_smoothing": 0.0,
                "clip_norm": 5.0,
            },
        }
    )


def run_seqforge(sizes: dict, budget: int, workers: int, precision: str, exp=None) -> dict:
    """Train `exp` (default: the peer configuration) as the pipeline does (Ray Train, `workers` × 2 / `workers`
    CPUs, `budget` tokens per worker's batch, one epoch of the corpus `write_corpus` wrote, `train.precision`)."""
    import mlflow
    import ray

    from seqforge.config.shared import TrainCfg
    from seqforge.data.shipping import ship
    from seqforge.training.budget.cluster import connect_ray
    from seqforge.training.driver import fit_on_ray

    tokenizer = sizes["tokenizer"]
    exp = exp or peer_experiment()
    train_cfg = TrainCfg(
        num_workers=workers,
        cpus_per_worker=THREADS // workers,
        precision=precision,
        max_epochs=1,
        batch_tokens=budget,
        storage_path=str((WORK / "ray").resolve()),
        num_checkpoints=1,
    )
    mlflow.set_tracking_uri(f"sqlite:///{(WORK / 'mlflow.db').resolve()}")
    connect_ray()
    with mlflow.start_run() as run:
        config = {
            "kind": "translation",
            "bleu_tokenize": None,
            "experiment": exp.model_dump(mode="json"),
            "train": train_cfg.model_dump(mode="json"),
            "src_vocab": tokenizer.vocab_size("source"),
            "tgt_vocab": tokenizer.vocab_size("target"),
            "data": ship(WORK / "tokenized"),
            "tokenizer": tokenizer.dumps(),
            "run_id": run.info.run_id,
            "tracking_uri": mlflow.get_tracking_uri(),
        }
        result = fit_on_ray(config, train_cfg, f"peer-{time.time_ns()}", ("val_loss", "min"), progress=False)
    ray.shutdown()
    if result.error is not None:
        raise RuntimeError("seqforge training failed") from result.error
    tokens_per_s = mlflow.MlflowClient().get_metric_history(run.info.run_id, "tokens_per_s")[-1].value
    seconds = (sizes["train_src"] + sizes["train_sents"] + sizes["train_tgt"]) / tokens_per_s  # it counts source EOS
    return {"train_src": sizes["train_src"] / seconds, "train_tgt": sizes["train_tgt"] / seconds, "wall_s": seconds}


def seqforge_decode(sizes: dict, precision: str, profiled: bool) -> dict:
    """seqforge's beam-5 decoding of the test sources (in this process, `precision` "32" or "bf16") with the
    newest checkpoint of a training round: as `onmt_decode`."""
    from torch.profiler import ProfilerActivity, profile

    from seqforge.config.shared import DecodeCfg
    from seqforge.inference.predictor import Predictor
    from seqforge.models.registry import build_model
    from seqforge.training.averaging import load_weights

    checkpoints = list((WORK / "ray").glob("peer-*/checkpoint_*/"))
    if not checkpoints:
        sys.exit(
            f"{WORK / 'ray'}: no seqforge checkpoint to decode; run a training round first (without --decode-only)"
        )
    checkpoint = max(checkpoints, key=lambda path: path.stat().st_mtime)
    weights, _ = load_weights(checkpoint)
    model = build_model(
        peer_experiment().model, sizes["tokenizer"].vocab_size("source"), sizes["tokenizer"].vocab_size("target")
    )
    model.load_state_dict(weights)
    torch.set_num_threads(THREADS)
    cfg = DecodeCfg(beam_size=5, batch_size=SENTENCES, length_penalty=0.0, device="cpu", precision=precision)
    predictor = Predictor(model, sizes["tokenizer"], {}, cfg)
    predictor.generate_ids(sizes["test_src_ids"][:SENTENCES])  # warm-up: first calls allocate
    timed = []
    for decode in (cfg, cfg.model_copy(update={"min_length": FIXED, "max_len_ratio": 0, "max_len_offset": FIXED + 1})):
        start = time.perf_counter()
        hyps = predictor.generate_ids(sizes["test_src_ids"], decode)
        timed.append((time.perf_counter() - start, sum(len(h[0]) for h in hyps)))
    (seconds, tokens), (fixed_seconds, fixed_tokens) = timed
    assert fixed_tokens == FIXED * sizes["test_sents"], fixed_tokens
    ops = {}
    if profiled:
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            predictor.generate_ids(sizes["test_src_ids"], decode)
        ops = {event.key: event.self_cpu_time_total for event in prof.key_averages()}
    return decode_figures(tokens, seconds, fixed_seconds, sizes) | {"ops": ops}


EVALUATION_LINE = re.compile(r"evaluation \d+/\d+, update ([\d,]+)/.*val BLEU ([\d.]+).*elapsed (\d+:\d\d:\d\d)")


def minutes_of(elapsed: str) -> float:
    """`H:MM:SS` -> minutes."""
    h, m, s = (int(part) for part in elapsed.split(":"))
    return round(h * 60 + m + s / 60, 2)


def scratch_checkout() -> tuple[Path, Path]:
    """A scratch copy of this checkout (`bench.recipes.scratch_repo`) with the translation task tokenized on
    the default profile, and the log its commands write."""
    from bench.recipes import run, scratch_repo

    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    repo, log = scratch_repo((WORK / "repo").resolve()), (WORK / "seqforge.log").resolve()
    run(["dvc", "repro", "tokenize@translation"], repo, log)
    return repo, log


def seqforge_for_minutes(repo: Path, log: Path, minutes: list[float]) -> list[dict]:
    """seqforge's default `gru_bahdanau` with `train.budget` = each of `minutes`, through the real stages in
    `repo`: one result per budget (`bench.recipes.result`) with its validation points."""
    import yaml

    from bench.recipes import result, run

    template = yaml.safe_load((repo / "conf" / "experiments" / "gru_bahdanau.yaml").read_text())
    names = []
    for m in minutes:
        names.append(f"gru_bahdanau_{m:g}m".replace(".", "_"))
        budget = {"train": {**template.get("train", {}), "budget": f"{round(m * 60)}s"}}
        (repo / "conf" / "experiments" / f"{names[-1]}.yaml").write_text(
            yaml.safe_dump(template | budget, sort_keys=False)
        )
    run(["seqforge", "sync"], repo, log)
    rows = []
    for m, name in zip(minutes, names, strict=True):
        run(["dvc", "repro", f"evaluate@{name}"], repo, log)
        lines = [line for line in log.read_text().splitlines() if line.startswith(f"{name} evaluation ")]
        first = max(i for i, line in enumerate(lines) if " evaluation 1/" in line)  # the last run's lines
        points = [
            {
                "minutes": minutes_of(elapsed),
                "update": int(update.replace(",", "")),
                "bleu": float(bleu),
                "split": "validation",
                "search": "greedy",
            }
            for update, bleu, elapsed in (EVALUATION_LINE.search(line).groups() for line in lines[first:])
        ]
        row = result(repo, name, log)
        rows.append({**row, "budget_minutes": m, "trained_minutes": minutes_of(row["trained_for"]), "points": points})
    return rows
