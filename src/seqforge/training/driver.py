"""The driver's side of a training run on Ray Train (Train V2 API): join the cluster, launch the workers'
loop (`training.worker.loop`) with the controller's callbacks, and export the chosen weights with the run's
gradient diagnostics."""

from __future__ import annotations

import json
import re
import shutil
from contextlib import ExitStack
from pathlib import Path

import mlflow
import ray
import torch
from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
from ray.train.torch import TorchTrainer
from ray.util.queue import Queue

from seqforge.config.shared import TrainCfg
from seqforge.core import paths
from seqforge.data.shipping import ship
from seqforge.data.tokenizer import SubwordTokenizer
from seqforge.experiments.config import ExperimentCfg
from seqforge.tasks.base import TaskCfg
from seqforge.tasks.registry import task_kind
from seqforge.tracking.client import TrackingError, tracking_uri
from seqforge.training.averaging import choose_weights
from seqforge.training.budget.cluster import connect_ray, placed
from seqforge.training.controller.checkpoint_queue import RegisteredCheckpoints
from seqforge.training.controller.progress import printing
from seqforge.training.diagnostics import log_diagnostics, read_diagnostics
from seqforge.training.worker.entry import train_worker
from seqforge.training.worker.storage import CHECKPOINT_NAME, storage_unreachable, torn


def fit_on_ray(
    config: dict, cfg: TrainCfg, name: str, metric: tuple[str, str], callbacks: tuple = (), progress: bool = True
):
    """Launch `train_worker` on the Ray cluster (`connect_ray` first: `config["data"]` is in its object store).

    `callbacks` are Ray Train callbacks (a Tune trial passes `TuneReportCallback`); `progress`
    prints epoch lines and the in-epoch bar (a Tune trial, which nobody watches, passes False).
    """
    storage = paths.ray_storage(cfg.storage_path, "train")
    if not progress:
        return _fit({**config, "progress": None}, cfg, name, metric, storage, list(callbacks))
    with printing(name.rsplit("-", 1)[0], cfg.guard(), config.get("plan")) as (lines, queue):
        return _fit({**config, "progress": queue}, cfg, name, metric, storage, [lines, *callbacks])


def _fit(config: dict, cfg: TrainCfg, name: str, metric: tuple[str, str], storage: str, callbacks: list):
    registered = Queue(actor_options={"num_cpus": 0})  # the checkpoints Ray registers, for rank 0's RunLogger
    trainer = TorchTrainer(
        train_worker,
        train_loop_config={**config, "registered": registered},
        scaling_config=ScalingConfig(
            num_workers=cfg.num_workers,
            use_gpu=cfg.use_gpu,
            resources_per_worker={"CPU": cfg.cpus_per_worker, **({"GPU": 1} if cfg.use_gpu else {})},
        ),
        run_config=RunConfig(
            name=name,
            storage_path=storage,
            callbacks=[RegisteredCheckpoints(registered), *callbacks],  # first: before Tune can stop the trial
            failure_config=FailureConfig(max_failures=cfg.max_failures),
            checkpoint_config=CheckpointConfig(
                num_to_keep=cfg.num_checkpoints,
                checkpoint_score_attribute=metric[0],
                checkpoint_score_order=metric[1],
            ),
        ),
    )
    try:
        return trainer.fit()
    finally:
        ray.kill(registered.actor)


def storage_failure(error: BaseException) -> str | None:
    """The workers' message when a Ray Train run failed because its checkpoint storage was unreachable
    (`CheckpointStorageError`, raised in a worker; Ray carries it as text in the run's error)."""
    match = re.search(r"CheckpointStorageError: (.+)", str(error))
    return match.group(1).strip() if match else None


def export_model(weights: dict, out_dir: Path, meta: dict, tokenizer_file: Path) -> None:
    """Weights -> `model.pt`, `model.json` (config and provenance), `tokenizer.json`."""
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    torch.save(weights, out_dir / "model.pt")
    shutil.copyfile(tokenizer_file, out_dir / "tokenizer.json")
    (out_dir / "model.json").write_text(json.dumps(meta, indent=2))


def kept_checkpoints(result, metric: tuple[str, str], name: str) -> list:
    """Experiment `name`'s kept checkpoints, best first by the task's validation metric (the last one
    if no epoch ended; mid-epoch resume points are never among them)."""
    scored = [(ckpt, m[metric[0]]) for ckpt, m in result.best_checkpoints or [] if not m.get("mid_epoch")]
    scored.sort(key=lambda pair: pair[1], reverse=metric[1] == "max")
    kept = [ckpt for ckpt, _ in scored] or ([result.checkpoint] if result.checkpoint else [])
    if not kept:
        raise RuntimeError(f"training {name} reported no checkpoint (did any epoch finish?)")
    return kept


def complete(dirs: list[Path], name: str) -> list[Path]:
    """The checkpoints of `dirs` that are complete (`storage.torn`), in order; each other one said in a line."""
    kept = []
    for folder in dirs:
        if why := torn(folder):
            print(f"{name}: kept checkpoint {folder} is incomplete ({why}): not exported", flush=True)
        else:
            kept.append(folder)
    if not kept:
        raise RuntimeError(f"training {name}: every kept checkpoint is incomplete; rerun the stage")
    return kept


def loop_config(
    exp: ExperimentCfg,
    task: TaskCfg,
    train_cfg: TrainCfg,
    tokenizer: SubwordTokenizer,
    run_id: str,
    data,
    plan: dict | None = None,
) -> dict:
    """What every Ray Train worker of one run gets (`train_worker`'s config): plain values, the tokenizer's
    JSON text and `data`, the object reference of the tokenized splits (`shipping.ship`): nothing read
    from the repository's path, so workers need no shared filesystem. `plan`: `Plan.worker_view` (None:
    `train_cfg.max_epochs` epochs, evaluated at each end)."""
    return {
        "kind": task.kind,
        "bleu_tokenize": task_kind(task.kind).validation_bleu(task),
        "experiment": exp.model_dump(mode="json"),
        "train": train_cfg.model_dump(mode="json"),
        "src_vocab": tokenizer.vocab_size("source"),
        "tgt_vocab": tokenizer.vocab_size("target"),
        "data": data,
        "tokenizer": tokenizer.dumps(),
        "run_id": run_id,
        "tracking_uri": tracking_uri(),
        "plan": plan,
    }


def fit_and_export(
    exp: ExperimentCfg,
    task: TaskCfg,
    train_cfg: TrainCfg,
    meta: dict,
    out_dir: Path,
    ray_name: str,
    plan: dict | None = None,
) -> dict:
    """Train `exp` on Ray Train into the active MLflow run (`meta["run_id"]`) as `plan` says
    (`Plan.worker_view`; None: `max_epochs`), export the chosen weights to `out_dir` with `meta`, and log
    the gradient diagnostics; returns what export decided and the diagnostics records
    (`seqforge.training.diagnostics`). Workers and their threads as `train_cfg` places them on the cluster."""
    train_cfg = placed(train_cfg)
    tokenizer_file = paths.tokenizer_file(exp.task)
    connect_ray()
    config = loop_config(
        exp,
        task,
        train_cfg,
        SubwordTokenizer.load(tokenizer_file),
        meta["run_id"],
        ship(paths.tokenized_dir(exp.task)),
        plan,
    )
    metric = task_kind(task.kind).monitor
    try:
        result = fit_on_ray(config, train_cfg, ray_name, metric)
    except Exception as err:  # Ray Train raises its workers' or controller's failure (TrainingFailedError)
        # an unreachable store can fail a worker's checkpoint or the controller's bookkeeping: either way, say so
        storage = storage_failure(err) or storage_unreachable(
            paths.ray_storage(train_cfg.storage_path, "train"), train_cfg.checkpoint_retries
        )
        if storage:
            raise TrackingError(f"training {exp.name} stopped: {storage}") from None
        raise
    with ExitStack() as stack:
        kept = kept_checkpoints(result, metric, exp.name)
        local = {c.path: Path(stack.enter_context(c.as_directory())) for c in [*kept, result.checkpoint]}
        dirs = complete([local[c.path] for c in kept], exp.name)
        weights, export = choose_weights(dirs, train_cfg.average_checkpoints, config, metric[1])
        # the diagnostics of every epoch: the newest complete checkpoint's (Ray's folder names are their times)
        newest = max((p for p, folder in local.items() if not torn(folder)), key=lambda p: p.rsplit("/", 1)[-1])
        records = read_diagnostics(local[newest] / CHECKPOINT_NAME)
    export_model(
        weights,
        out_dir,
        {
            **meta,
            "epoch": export["export_epoch"],
            "update": export["export_update"],
            "averaged": export["export_averaged"],
        },
        tokenizer_file,
    )
    log_diagnostics(records, exp.name, exp.optim.clip_norm)
    mlflow.log_metrics(
        {
            "best_epoch": (export["export_epoch"] or 0) + 1,
            **{k: v for k, v in export.items() if k != "export_epoch" and v is not None},
        }
    )
    return {**export, "diagnostics": records}
