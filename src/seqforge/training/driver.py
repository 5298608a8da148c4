"""Lightning on Ray Train (Train V2 API): the worker loop, the Ray run, and exporting the chosen weights."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import warnings
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

import torch

from seqforge import paths
from seqforge.config.experiment import ExperimentCfg
from seqforge.config.shared import TrainCfg
from seqforge.data.shipping import ship
from seqforge.data.tokenizer import SubwordTokenizer
from seqforge.tasks.base import TaskCfg
from seqforge.tasks.registry import task_kind
from seqforge.tracking.client import (
    TrackingError,
    ray_runtime_env,
    tracking_uri,
)
from seqforge.training.averaging import choose_weights
from seqforge.training.diagnostics import log_diagnostics, read_diagnostics
from seqforge.training.ray_reports import CHECKPOINT_NAME, storage_unreachable


def train_worker(config: dict) -> None:
    """Per-worker loop: a Lightning Trainer wired to Ray's DDP strategy and checkpoint reporting."""
    import lightning.pytorch as pl
    import ray
    import ray.train
    from lightning.pytorch.callbacks import EarlyStopping
    from mlflow import MlflowClient
    from ray.train.lightning import RayDDPStrategy, RayLightningEnvironment, prepare_trainer

    from seqforge.data import shipping
    from seqforge.data.datasets import Seq2SeqDataModule
    from seqforge.tasks.registry import task_kind
    from seqforge.tracking.run_logger import RunLogger
    from seqforge.training.diagnostics import TrainingDiagnostics
    from seqforge.training.faults import injected
    from seqforge.training.module import Seq2SeqModule
    from seqforge.training.ray_reports import CHECKPOINT_NAME, RayCheckpoints, wait_for_storage
    from seqforge.training.replan import BudgetKeeper
    from seqforge.training.step_progress import StepProgress

    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*sync_dist=True.*")
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    train_cfg = TrainCfg.model_validate(config["train"])
    # Ray does not cap a worker's threads: torch would start one per core in every worker and oversubscribe the node
    torch.set_num_threads(train_cfg.cpus_per_worker)
    # metrics go through RunLogger's outbox, which retries for as long as an outage lasts; MLflow's own
    # backoff (up to minutes per request) would only delay sending them once the server is back
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    metric, mode = task_kind(config["kind"]).monitor
    ctx = ray.train.get_context()
    pl.seed_everything(train_cfg.seed, workers=True, verbose=False)
    module = Seq2SeqModule.from_loop_config(config)
    plan = config.get("plan") or {"updates": None, "eval_every": None, "max_epochs": train_cfg.max_epochs}
    every = plan["eval_every"]  # updates between evaluations (None: at each epoch's end)
    keeper = ([BudgetKeeper(config["experiment"]["name"], plan["budget_s"], every, plan["updates"], config["progress"])]
              if plan.get("budget_s") else [])  # a time budget: re-planned as the run goes
    trainer = pl.Trainer(
        accelerator="auto",
        devices="auto",
        strategy=RayDDPStrategy(),
        plugins=[RayLightningEnvironment()],
        precision=train_cfg.precision,
        max_epochs=plan["max_epochs"],
        max_steps=plan["updates"] if every else -1,
        max_time=train_cfg.guard(),
        accumulate_grad_batches=train_cfg.accumulate_grad_batches,
        # batches, across epoch ends
        val_check_interval=every * train_cfg.accumulate_grad_batches if every else 1.0,
        check_val_every_n_epoch=None if every else 1,
        callbacks=[  # diagnostics first: each epoch's record is in that epoch's checkpoint
            TrainingDiagnostics(),
            *keeper,  # before the checkpoint: it carries the re-planned updates
            RayCheckpoints((metric, mode), every, train_cfg.checkpoint_every_n_steps, train_cfg.checkpoint_retries),
            EarlyStopping(metric, mode=mode, patience=train_cfg.early_stopping_patience),
            *([StepProgress(config["progress"])] if config["progress"] is not None else []),
            *injected(),
        ],
        logger=RunLogger(config["tracking_uri"], config["run_id"], notify=_notifier(config["progress"]),
                         registered=config["registered"] if ctx.get_world_rank() == 0 else None),
        log_every_n_steps=train_cfg.log_every_n_steps,
        use_distributed_sampler=False,  # the token-budget sampler shards by rank itself
        enable_checkpointing=False,  # Ray owns checkpoints (RayCheckpoints)
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer = prepare_trainer(trainer)
    MlflowClient(config["tracking_uri"]).set_tag(  # which Ray node each worker ran on
        config["run_id"], f"ray.worker{ctx.get_world_rank()}.node", ray.get_runtime_context().get_node_id())
    datamodule = Seq2SeqDataModule(shipping.splits(config["data"]), train_cfg)
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is None:
        trainer.fit(module, datamodule=datamodule)
        return
    storage = ctx.get_storage()  # resuming an interrupted run: its checkpoint comes from the storage
    wait_for_storage(storage.storage_filesystem, storage.experiment_fs_path, train_cfg.checkpoint_retries)
    with checkpoint.as_directory() as ckpt_dir:
        ckpt = os.path.join(ckpt_dir, CHECKPOINT_NAME)
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt)


def _notifier(queue) -> Callable[[str], None]:
    """A worker's warnings: into its log, and to the driver's screen when someone watches (`queue`)."""
    def notify(message: str) -> None:
        logging.getLogger("seqforge.training.driver").warning(message)
        if queue is not None:
            queue.put(f"warning: {message}")
    return notify


def connect_ray() -> None:
    """Join the Ray cluster at `RAY_ADDRESS` (else start a local instance), once per process. Workers'
    output goes to Ray's log files; the driver prints epoch lines."""
    import ray

    if not ray.is_initialized():
        ray.init(address=os.environ.get("RAY_ADDRESS") or "local", log_to_driver=False, configure_logging=False,
                 runtime_env=ray_runtime_env())


def fit_on_ray(config: dict, cfg: TrainCfg, name: str, metric: tuple[str, str], callbacks: tuple = (),
               progress: bool = True):
    """Launch `train_worker` on the Ray cluster (`connect_ray` first: `config["data"]` is in its object store).

    `callbacks` are Ray Train callbacks (a Tune trial passes `TuneReportCallback`); `progress`
    prints epoch lines and the in-epoch bar (a Tune trial, which nobody watches, passes False).
    """
    from seqforge.training.progress import printing

    storage = paths.ray_storage(cfg.storage_path, "train")
    if not progress:
        return _fit({**config, "progress": None}, cfg, name, metric, storage, list(callbacks))
    with printing(name.rsplit("-", 1)[0], cfg.guard(), config.get("plan")) as (lines, queue):
        return _fit({**config, "progress": queue}, cfg, name, metric, storage, [lines, *callbacks])


def _fit(config: dict, cfg: TrainCfg, name: str, metric: tuple[str, str], storage: str, callbacks: list):
    import ray
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer
    from ray.util.queue import Queue

    from seqforge.training.registered import RegisteredCheckpoints

    registered = Queue(actor_options={"num_cpus": 0})  # the checkpoints Ray registers, for rank 0's RunLogger
    trainer = TorchTrainer(
        train_worker,
        train_loop_config={**config, "registered": registered},
        scaling_config=ScalingConfig(
            num_workers=cfg.num_workers, use_gpu=cfg.use_gpu,
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


def loop_config(exp: ExperimentCfg, task: TaskCfg, train_cfg: TrainCfg, tokenizer: SubwordTokenizer,
                run_id: str, data, plan: dict | None = None) -> dict:
    """What every Ray Train worker of one run gets (`train_worker`'s config): plain values, the tokenizer's
    JSON text and `data`, the object reference of the tokenized splits (`shipping.ship`): nothing read
    from the repository's path, so workers need no shared filesystem. `plan`: `Plan.worker_view` (None:
    `train_cfg.max_epochs` epochs, evaluated at each end)."""
    from seqforge.tasks.registry import task_kind

    return {
        "kind": task.kind, "bleu_tokenize": task_kind(task.kind).validation_bleu(task),
        "experiment": exp.model_dump(mode="json"), "train": train_cfg.model_dump(mode="json"),
        "src_vocab": tokenizer.vocab_size("source"), "tgt_vocab": tokenizer.vocab_size("target"),
        "data": data, "tokenizer": tokenizer.dumps(),
        "run_id": run_id, "tracking_uri": tracking_uri(), "plan": plan,
    }


def fit_and_export(exp: ExperimentCfg, task: TaskCfg, train_cfg: TrainCfg, meta: dict, out_dir: Path,
                   ray_name: str, plan: dict | None = None) -> dict:
    """Train `exp` on Ray Train into the active MLflow run (`meta["run_id"]`) as `plan` says
    (`Plan.worker_view`; None: `max_epochs`), export the chosen weights to `out_dir` with `meta`, and log
    the gradient diagnostics; returns what export decided and the diagnostics records
    (`seqforge.training.diagnostics`)."""
    import mlflow

    tokenizer_file = paths.tokenizer_file(exp.task)
    connect_ray()
    config = loop_config(exp, task, train_cfg, SubwordTokenizer.load(tokenizer_file), meta["run_id"],
                         ship(paths.tokenized_dir(exp.task)), plan)
    metric = task_kind(task.kind).monitor
    try:
        result = fit_on_ray(config, train_cfg, ray_name, metric)
    except Exception as err:  # Ray Train raises its workers' or controller's failure (TrainingFailedError)
        # an unreachable store can fail a worker's checkpoint or the controller's bookkeeping: either way, say so
        storage = storage_failure(err) or storage_unreachable(paths.ray_storage(train_cfg.storage_path, "train"),
                                                              train_cfg.checkpoint_retries)
        if storage:
            raise TrackingError(f"training {exp.name} stopped: {storage}") from None
        raise
    with ExitStack() as stack:
        dirs = [Path(stack.enter_context(c.as_directory())) for c in kept_checkpoints(result, metric, exp.name)]
        weights, export = choose_weights(dirs, train_cfg.average_checkpoints, config, metric[1])
        records = read_diagnostics(Path(stack.enter_context(result.checkpoint.as_directory())) / CHECKPOINT_NAME)
    export_model(weights, out_dir, {**meta, "epoch": export["export_epoch"], "update": export["export_update"],
                                    "averaged": export["export_averaged"]}, tokenizer_file)
    log_diagnostics(records, exp.name, exp.optim.clip_norm)
    mlflow.log_metrics({"best_epoch": (export["export_epoch"] or 0) + 1,
                        **{k: v for k, v in export.items() if k != "export_epoch" and v is not None}})
    return {**export, "diagnostics": records}
