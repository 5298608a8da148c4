"""How fast this machine trains an experiment: seconds per optimizer update and per evaluation.

The last run of the same model, batch and workers on this machine gives it (`record` after each train
stage, in `.seqforge/rates.json`); before one has run, a short timed probe does: a few updates of the model on
the task's real batches in this process, with the threads one worker gets, and greedy decoding of
validation batches. One process on an idle machine is faster than the run's workers side by side on it,
so the probe is scaled by what this machine's earlier runs measured against their own probes (`PRIOR`
before any).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from seqforge.config.shared import TrainCfg
from seqforge.core import paths
from seqforge.data.batching import TokenBudgetBatchSampler, bleu_sample, collate
from seqforge.experiments.config import ExperimentCfg
from seqforge.training.worker.precision import autocast


@dataclass(frozen=True)
class Rate:
    """Seconds per optimizer update and per evaluation on this machine, and where they come from."""

    seconds_per_update: float
    seconds_per_eval: float
    source: str


RATES = paths.STATE / "rates.json"


def machine() -> str:
    """This machine, as far as speed goes: its CPU model and count, and its GPU if training uses one."""
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        cpu = next(
            (
                line.split(":", 1)[1].strip()
                for line in cpuinfo.read_text().splitlines()
                if line.startswith("model name")
            ),
            cpu,
        )
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{cpu} ×{os.cpu_count()} / {gpu}"


def rate_key(exp: ExperimentCfg, cfg: TrainCfg, vocab: tuple[int, int], kind: str) -> str:
    """What the step rate depends on: the model, the batch, the workers and the vocabulary."""
    what = {
        "model": exp.model.model_dump(mode="json"),
        "vocab": vocab,
        "kind": kind,
        **{
            k: getattr(cfg, k)
            for k in (
                "batch_tokens",
                "accumulate_grad_batches",
                "num_workers",
                "cpus_per_worker",
                "precision",
                "use_gpu",
                "eval_bleu_sentences",
                "pad_to_multiple",
            )
        },
    }
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:16]


def _read() -> dict:
    try:
        return json.loads(RATES.read_text())
    except (OSError, ValueError):
        return {}


def _write(rates: dict) -> None:
    RATES.parent.mkdir(parents=True, exist_ok=True)
    tmp = RATES.with_suffix(".tmp")
    tmp.write_text(json.dumps(rates, indent=1, sort_keys=True))
    tmp.replace(RATES)


def recorded(key: str) -> Rate | None:
    """The last run's rate for `key` on this machine, if one ran."""
    entry = _read().get(machine(), {}).get(key, {})
    if "run" not in entry:
        return None
    return Rate(*entry["run"], "the last run on this machine")


PRIOR = (1.5, 1.5)  # run/probe before a machine has its own runs: what the 2-core development machines
# measured (docs/history.md); the workers' data-parallel steps, Lightning and Ray cost more
# than the probe's bare steps


def calibration() -> tuple[tuple[float, float], str]:
    """Run/probe ratios (update, evaluation): the median of this machine's runs, else `PRIOR`; and whence."""
    pairs = [e for e in _read().get(machine(), {}).values() if "run" in e and "probe" in e]
    if not pairs:
        return PRIOR, "prior: no run on this machine yet"
    ratios = tuple(statistics.median(e["run"][i] / e["probe"][i] for e in pairs) for i in (0, 1))
    return ratios, f"from this machine's {len(pairs)} run{'s' * (len(pairs) > 1)}"


def record(
    key: str,
    seconds_per_update: float | None = None,
    seconds_per_eval: float | None = None,
    probe: tuple[float, float] | None = None,
) -> None:
    """Keep a run's measured rate (or a probe's) for `key` on this machine."""
    rates = _read()
    entry = rates.setdefault(machine(), {}).setdefault(key, {})
    if probe is not None:
        entry["probe"] = list(probe)
    if seconds_per_update is not None and seconds_per_eval is not None:
        entry["run"] = [seconds_per_update, seconds_per_eval]
    _write(rates)


def probe(module, train_set, val_set, cfg: TrainCfg, min_seconds: float = 2.0) -> tuple[float, float]:
    """Time a few updates of `module` (a `Seq2SeqModule`) on real training batches of one worker, and its
    validation step on two validation batches: (seconds per update, seconds per evaluation of one worker's
    share of the validation set). Runs with the threads one worker gets."""
    threads = torch.get_num_threads()
    torch.set_num_threads(cfg.cpus_per_worker)
    try:
        batches = list(
            TokenBudgetBatchSampler(
                train_set.lengths,
                cfg.batch_tokens,
                shuffle=True,
                seed=cfg.seed,
                world_size=cfg.num_workers,
                multiple=cfg.pad_multiple(),
            )
        )
        optimizer = torch.optim.AdamW(module.parameters(), lr=1e-4)
        module.train()
        times = []
        for i, batch in enumerate(batches[: 12 * cfg.accumulate_grad_batches]):
            start = time.perf_counter()
            with autocast(cfg.precision):
                loss = module._loss(collate(train_set.__getitems__(batch), cfg.pad_multiple()))
            loss.backward()
            if (i + 1) % cfg.accumulate_grad_batches == 0:
                torch.nn.utils.clip_grad_norm_(module.parameters(), 1.0)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            times.append(time.perf_counter() - start)
            if i >= 3 and sum(times[1:]) >= min_seconds:
                break
        per_update = float(np.median(times[1:] or times)) * cfg.accumulate_grad_batches
        val_batches = list(
            TokenBudgetBatchSampler(
                val_set.lengths,
                cfg.batch_tokens,
                shuffle=False,
                seed=0,
                world_size=cfg.num_workers,
                even=False,
                multiple=cfg.pad_multiple(),
            )
        )
        sample = bleu_sample(len(val_set), cfg.eval_bleu_sentences)
        module.eval()
        with torch.no_grad():
            timed = []
            for batch in (val_batches[len(val_batches) // 3], val_batches[2 * len(val_batches) // 3]):  # typical
                start = time.perf_counter()
                with autocast(cfg.precision):
                    module.validation_batch(collate(val_set.__getitems__(batch), cfg.pad_multiple()), val_set, sample)
                timed.append(time.perf_counter() - start)
        per_eval = float(np.mean(timed)) * len(val_batches) if timed else 0.0
    finally:
        torch.set_num_threads(threads)
    return per_update, per_eval


def measured(key: str, make_probe) -> Rate:
    """This machine's rate for `key`: the last run's, else `make_probe()` scaled by `calibration`."""
    last = recorded(key)
    if last is not None:
        return last
    raw = make_probe()
    record(key, probe=raw)
    (update_ratio, eval_ratio), whence = calibration()
    return Rate(raw[0] * update_ratio, raw[1] * eval_ratio, f"a timed probe × {update_ratio:.2f}, {whence}")
