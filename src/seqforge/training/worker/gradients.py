"""Gradient diagnostics of every training run, measured where the classic claims live.

- **Vanishing gradients**: ‖∂L/∂h_d‖, the norm of the loss's gradient with respect to the encoder state
  at distance d from the source end (d = 0: the last state the encoder reads), on one fixed validation
  batch, before the first update and after every epoch. The ratio farthest / nearest is the decay.
- **Exploding gradients**: the distribution of the global gradient norm before clipping, per epoch
  (quantiles, a log-spaced histogram) and how often clipping acted.

Rank 0 measures; the records ride in every checkpoint (a resumed run keeps them) and the training
driver draws them after the run (`seqforge.training.diagnostics`).
"""

from __future__ import annotations

import math
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from seqforge.data.batching import collate
from seqforge.data.tokenizer import PAD
from seqforge.models.base import Seq2Seq
from seqforge.tracking.run_logger import RunLogger
from seqforge.training.worker.diagnostics_record import NORM_EDGES, STATE_KEY

PROBE_SENTENCES = 32  # the fixed validation batch: this many of the longest sources


def encoder_gradients(model: Seq2Seq, batch: dict[str, Tensor]) -> list[float]:
    """Mean ‖∂L/∂h‖ over the batch's sentences (and encoder directions) at distance d = 0 .. D-1 from
    the source end, D the shortest source in the batch (so every sentence counts at every distance).
    L is the mean token cross-entropy under teacher forcing, in eval mode (no dropout, no smoothing)."""
    training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            logits, states, distances = model.probe_states(batch["src"], batch["src_lens"], batch["tgt_in"])
            loss = F.cross_entropy(logits.flatten(0, 1).float(), batch["tgt_out"].flatten(), ignore_index=PAD)
            grads = torch.autograd.grad(loss, states, allow_unused=True, materialize_grads=True)
    finally:
        model.train(training)
    norms = torch.stack([g.float().norm(dim=-1) for g in grads])  # (states, B)
    return [float(norms[distances == d].mean()) for d in range(int(batch["src_lens"].min()))]


def norm_summary(norms: Tensor, clip_norm: float | None) -> dict[str, Any]:
    """Pre-clip global gradient norms of one epoch: quantiles, clip rate, histogram over `NORM_EDGES`
    (values outside fall in the first or last bin)."""
    values = norms.double().cpu().numpy()
    finite = values[np.isfinite(values)]
    clipped = float(np.mean(values > clip_norm)) if clip_norm is not None else 0.0
    counts = np.histogram(np.clip(finite, NORM_EDGES[0], NORM_EDGES[-1]), bins=NORM_EDGES)[0]  # all NaN: zeros
    quantiles = {f"p{q}": float(np.percentile(finite, q)) if finite.size else math.nan for q in (10, 50, 90, 99)}
    return {
        "updates": int(values.size),
        "nonfinite": int(values.size - finite.size),
        "clip_rate": clipped,
        **quantiles,
        "max": float(finite.max()) if finite.size else math.nan,
        "histogram": [int(c) for c in counts],
    }


def probe_batch(split, size: int = PROBE_SENTENCES) -> dict[str, Tensor]:
    """The `size` validation pairs with the longest sources (ties: first in the split), collated."""
    order = np.argsort(-split.lengths[:, 0], kind="stable")[:size]
    return collate(split.__getitems__(sorted(int(i) for i in order)))


class TrainingDiagnostics(pl.Callback):
    """Measures the encoder-gradient curve and the epoch's gradient-norm distribution (see module doc).

    Records are keyed by epoch as strings: "0" is the model at initialisation. Each epoch end logs
    `enc_grad_decay` (farthest / nearest), `grad_norm_p50/p90/max`, and the curve itself as the metric
    `enc_grad_norm_epoch<N>` with the distance as its step (MLflow draws it as a curve).
    """

    def __init__(self, sentences: int = PROBE_SENTENCES) -> None:
        self.sentences = sentences
        self.records: dict[str, dict[str, Any]] = {}
        self.norms: list[Tensor] = []

    @property
    def state_key(self) -> str:
        return STATE_KEY

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage == "fit":
            self.batch = probe_batch(trainer.datamodule.val_set, self.sentences)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.global_step == 0 and not self.records:
            self._record(trainer, pl_module, 0)

    def on_before_optimizer_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer) -> None:
        if trainer.global_rank == 0:  # gradients are all-reduced: every rank holds the same norm
            grads = [p.grad for p in pl_module.parameters() if p.grad is not None]
            self.norms.append(torch.nn.utils.get_total_norm(grads).detach())

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._record(trainer, pl_module, trainer.current_epoch + 1)

    def _record(self, trainer: pl.Trainer, pl_module: pl.LightningModule, epoch: int) -> None:
        if trainer.global_rank != 0:
            return
        batch = {key: value.to(pl_module.device) for key, value in self.batch.items()}
        curve = encoder_gradients(pl_module.model, batch)
        record: dict[str, Any] = {
            "step": trainer.global_step,
            "encoder_grad": curve,
            "decay": curve[-1] / curve[0] if curve[0] > 0 else math.nan,
        }
        metrics = {"enc_grad_decay": record["decay"]}
        if self.norms:
            record["grad_norm"] = norm_summary(torch.stack(self.norms), pl_module.exp.optim.clip_norm)
            metrics |= {f"grad_norm_{k}": record["grad_norm"][k] for k in ("p50", "p90", "max")}
            self.norms = []
        self.records[str(epoch)] = record
        if isinstance(trainer.logger, RunLogger):  # the curve's steps are distances: routed by the update
            trainer.logger.log_metrics(metrics, step=trainer.global_step)
            trainer.logger.log_curve(f"enc_grad_norm_epoch{epoch}", curve, trainer.global_step)

    def state_dict(self) -> dict[str, Any]:
        return {"records": self.records, "norms": [float(n) for n in self.norms]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.records = dict(state_dict["records"])
        self.norms = [torch.tensor(n) for n in state_dict["norms"]]
