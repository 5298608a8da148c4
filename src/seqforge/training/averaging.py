"""Which weights a training run exports: its best checkpoint, or the mean of the best ones it kept.

Averaging the parameters of the last good checkpoints (Vaswani et al., 2017; Junczys-Dowmunt et al.,
2016) smooths the noise of the final updates. `train.average_checkpoints: auto` keeps the average
only when it scores better than the best single checkpoint on the task's validation metric.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import torch
from torch import Tensor

from seqforge.config.shared import TrainCfg
from seqforge.training.worker.storage import CHECKPOINT_NAME

Weights = dict[str, Tensor]


def load_weights(checkpoint_dir: Path) -> tuple[Weights, dict]:
    """Model weights of one Ray Train checkpoint directory (Lightning format), and its epoch and update
    (`export_epoch`, `export_update`)."""
    ckpt = torch.load(checkpoint_dir / CHECKPOINT_NAME, map_location="cpu", weights_only=False)
    weights = {k.removeprefix("model."): v for k, v in ckpt["state_dict"].items() if k.startswith("model.")}
    return weights, {"export_epoch": ckpt.get("epoch"), "export_update": ckpt.get("global_step")}


def average(states: list[Weights]) -> Weights:
    """Element-wise mean of floating-point tensors; other tensors are taken from the first state."""
    return {
        key: torch.stack([s[key].float() for s in states]).mean(0).to(value.dtype)
        if value.is_floating_point()
        else value
        for key, value in states[0].items()
    }


def validation_score(config: dict, weights: Weights) -> float:
    """The task's monitored validation metric for `weights`, computed in this process like in
    training (same data module and metric code; one CPU process, the data from Ray's object store)."""
    import lightning.pytorch as pl

    from seqforge.data.datasets import Seq2SeqDataModule
    from seqforge.data.shipping import splits
    from seqforge.tasks.registry import task_kind
    from seqforge.training.worker.module import Seq2SeqModule

    module = Seq2SeqModule.from_loop_config(config)
    module.model.load_state_dict(weights)
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)  # no banners in the stage's output
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    )
    datamodule = Seq2SeqDataModule(splits(config["data"]), TrainCfg.model_validate(config["train"]))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*LeafSpec.*")
        metrics = trainer.validate(module, datamodule=datamodule, verbose=False)[0]
    return float(metrics[task_kind(config["kind"]).monitor[0]])


def choose_weights(checkpoint_dirs: list[Path], policy: str, config: dict, mode: str) -> tuple[Weights, dict]:
    """Weights to export from the kept checkpoints (best first), and what was decided (for MLflow).

    `policy`: ``never`` (the best checkpoint), ``always`` (their mean), ``auto`` (the mean when its
    validation score beats the best checkpoint's, both computed here the same way).
    """
    best, where = load_weights(checkpoint_dirs[0])
    info: dict = {**where, "export_averaged": 0}
    if policy == "never" or len(checkpoint_dirs) < 2:
        return best, info
    mean = average([best, *(load_weights(d)[0] for d in checkpoint_dirs[1:])])
    if policy == "always":
        return mean, {**info, "export_averaged": len(checkpoint_dirs)}
    best_score, mean_score = validation_score(config, best), validation_score(config, mean)
    info |= {"export_val_best": best_score, "export_val_average": mean_score}
    better = mean_score > best_score if mode == "max" else mean_score < best_score
    return (mean, {**info, "export_averaged": len(checkpoint_dirs)}) if better else (best, info)
