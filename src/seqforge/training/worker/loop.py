"""The loop every Ray Train worker runs: a Lightning Trainer wired to Ray's DDP strategy, the run's callbacks
(gradient diagnostics, the time budget, Ray checkpoints, early stopping, in-epoch progress, injected faults)
and rank 0's MLflow logger, resumed from Ray's latest checkpoint when there is one."""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Callable
from pathlib import Path

import lightning.pytorch as pl
import ray
import ray.train
import torch
from lightning.pytorch.callbacks import EarlyStopping
from ray.train.lightning import RayDDPStrategy, RayLightningEnvironment, prepare_trainer

from seqforge.config.shared import TrainCfg
from seqforge.data import shipping
from seqforge.data.datasets import Seq2SeqDataModule
from seqforge.tasks.registry import task_kind
from seqforge.tracking.run_logger import RunLogger
from seqforge.training.worker.budget_keeper import BudgetKeeper
from seqforge.training.worker.checkpoints import CHECKPOINT_NAME, RayCheckpoints, resume_point, wait_for_storage
from seqforge.training.worker.faults import injected
from seqforge.training.worker.gradients import TrainingDiagnostics
from seqforge.training.worker.module import Seq2SeqModule
from seqforge.training.worker.precision import lightning_precision
from seqforge.training.worker.step_progress import StepProgress
from seqforge.training.worker.step_seed import StepSeed
from seqforge.training.worker.storage import room_for


def train_worker(config: dict) -> None:
    """Per-worker loop: a Lightning Trainer wired to Ray's DDP strategy and checkpoint reporting."""
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
    keeper = (
        [BudgetKeeper(config["experiment"]["name"], plan["budget_s"], every, plan["updates"], config["progress"])]
        if plan.get("budget_s")
        else []
    )  # a time budget: re-planned as the run goes
    notify = _notifier(config["progress"])
    logger = RunLogger(
        config["tracking_uri"],
        config["run_id"],
        notify=notify,
        registered=config["registered"] if ctx.get_world_rank() == 0 else None,
    )
    trainer = pl.Trainer(
        accelerator="auto",
        devices="auto",
        strategy=RayDDPStrategy(),
        plugins=[RayLightningEnvironment()],
        precision=lightning_precision(train_cfg.precision, train_cfg.use_gpu),  # `auto`: this machine's
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
            StepSeed(train_cfg.seed),  # dropout's masks a function of the batch: a resumed run redoes them
            *([StepProgress(config["progress"])] if config["progress"] is not None else []),
            *injected(),
        ],
        logger=logger,
        log_every_n_steps=train_cfg.log_every_n_steps,
        use_distributed_sampler=False,  # the token-budget sampler shards by rank itself
        enable_checkpointing=False,  # Ray owns checkpoints (RayCheckpoints)
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer = prepare_trainer(trainer)
    logger.tag(f"ray.worker{ctx.get_world_rank()}.node", ray.get_runtime_context().get_node_id())  # where it ran
    datamodule = Seq2SeqDataModule(shipping.splits(config["data"]), train_cfg)
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:  # resuming an interrupted run: its checkpoint comes from the storage
        storage = ctx.get_storage()
        wait_for_storage(storage.storage_filesystem, storage.experiment_fs_path, train_cfg.checkpoint_retries)
        checkpoint, passed_over = resume_point(checkpoint)
        if passed_over and ctx.get_world_rank() == 0:
            notify(passed_over)
    if checkpoint is None:
        trainer.fit(module, datamodule=datamodule)
        return
    with checkpoint.as_directory() as ckpt_dir:
        # a restarted attempt after a full disk: stop at once, not one evaluation interval later
        room_for(storage.storage_filesystem, storage.experiment_fs_path, Path(ckpt_dir))
        ckpt = os.path.join(ckpt_dir, CHECKPOINT_NAME)
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt)


def _notifier(queue) -> Callable[[str], None]:
    """A worker's warnings: into its log, and to the driver's screen when someone watches (`queue`)."""

    def notify(message: str) -> None:
        logging.getLogger(__name__).warning(message)
        if queue is not None:
            queue.put(f"warning: {message}")

    return notify
