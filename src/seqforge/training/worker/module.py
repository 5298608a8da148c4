"""The Lightning module every model family and task trains with."""

from __future__ import annotations

import math
import time

import lightning.pytorch as pl
import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch.trainer.states import TrainerFn

from seqforge.config.shared import DecodeCfg
from seqforge.data.tokenizer import PAD, SubwordTokenizer
from seqforge.experiments.config import experiment_schema
from seqforge.inference.decoding import greedy, max_lengths
from seqforge.models.registry import build_model
from seqforge.tasks.metrics import bleu_from_stats, bleu_stats
from seqforge.tasks.registry import task_kind
from seqforge.training.worker.schedule import step_schedule

VAL_DECODE = DecodeCfg()  # length caps for the per-epoch greedy validation BLEU
OPTIMIZERS = {  # `optim.optimizer`: parameter groups (weight decay per group) and the optim settings -> optimizer
    "adamw": lambda groups, optim: torch.optim.AdamW(groups, lr=optim.lr, betas=optim.betas),
    "sgd": lambda groups, optim: torch.optim.SGD(groups, lr=optim.lr, momentum=optim.momentum),
}


class Seq2SeqModule(pl.LightningModule):
    """Label-smoothed training, clipped gradients, per-epoch validation loss/perplexity, and for
    translation greedy validation BLEU (the metric it is selected on; chat models use the loss)."""

    def __init__(
        self,
        experiment: dict,
        src_vocab: int,
        tgt_vocab: int,
        tokenizer: str,
        kind: str,
        bleu_tokenize: str | None = None,
        eval_every: int | None = None,
    ) -> None:
        """`tokenizer`: the task's tokenizer as JSON text (`SubwordTokenizer.dumps`); `eval_every`: updates
        between evaluations (None: at each epoch's end), the plateau schedule's period."""
        super().__init__()
        self.save_hyperparameters(ignore=["tokenizer"], logger=False)
        self.exp = experiment_schema().model_validate(experiment)
        self.model = build_model(self.exp.model, src_vocab, tgt_vocab)
        self.tokenizer = SubwordTokenizer.loads(tokenizer)
        self.monitor = task_kind(kind).monitor
        self.bleu_tokenize = bleu_tokenize  # validation BLEU's sacreBLEU tokenizer (kinds selected on BLEU)
        self.eval_every = eval_every
        self._reset_counters()

    @classmethod
    def from_loop_config(cls, config: dict) -> Seq2SeqModule:
        """The module a training run's loop config (`train.loop_config`) describes; its model's forward
        `torch.compile`d when the config's `train.compile` says so (decoding stays eager)."""
        module = cls(
            config["experiment"],
            config["src_vocab"],
            config["tgt_vocab"],
            config["tokenizer"],
            config["kind"],
            config["bleu_tokenize"],
            (config.get("plan") or {}).get("eval_every"),
        )
        if config["train"].get("compile"):
            module.model.compile(dynamic=True)
        return module

    def _reset_counters(self) -> None:
        # since the last evaluation: training tokens, loss × sentences, sentences, clipped updates, updates
        # (tensors: no per-step sync)
        self._train = torch.zeros(5, dtype=torch.float64, device=self.device)
        self._t0 = time.perf_counter()

    def _loss(self, batch: dict, reduction: str = "mean") -> torch.Tensor:
        logits = self.model(batch["src"], batch["src_lens"], batch["tgt_in"])
        return F.cross_entropy(
            logits.flatten(0, 1).float(),
            batch["tgt_out"].flatten(),
            ignore_index=PAD,
            label_smoothing=self.exp.optim.label_smoothing if self.training else 0.0,
            reduction=reduction,
        )

    # -- training -----------------------------------------------------------------------------
    def on_train_start(self) -> None:  # a resumed run counts from where it goes on
        self._reset_counters()

    def on_train_batch_start(self, batch: dict, batch_idx: int) -> None:
        optim = self.exp.optim
        if optim.schedule == "plateau" and self.global_step < optim.warmup_steps:
            for group in self.trainer.optimizers[0].param_groups:
                group["lr"] = optim.lr * (self.global_step + 1) / optim.warmup_steps

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss = self._loss(batch)
        sentences = batch["src"].size(0)
        self._train[0] += (batch["tgt_out"] != PAD).sum() + batch["src_lens"].sum()
        self._train[1] += loss.detach() * sentences
        self._train[2] += sentences
        self.log("train_loss_step", loss, on_step=True, on_epoch=False, batch_size=sentences)
        return loss

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None) -> None:
        """Clip to `optim.clip_norm` (null: never); the pre-clip norm and the clip count stay tensors (no host
        sync per step)."""
        cap = self.exp.optim.clip_norm or math.inf
        norm = torch.nn.utils.clip_grad_norm_(self.parameters(), cap)
        self.log("grad_norm", norm, on_step=True, on_epoch=False)
        self._train[3] += norm > cap
        self._train[4] += 1

    # -- validation ---------------------------------------------------------------------------
    def on_validation_epoch_start(self) -> None:
        self._eval_t0 = time.perf_counter()
        self._train_seconds = self._eval_t0 - self._t0
        self._val = torch.zeros(12, dtype=torch.float64)  # loss_sum, n_tokens, 10 BLEU stats

    def validation_batch(self, batch: dict, data, bleu_rows: np.ndarray | None = None) -> list[float]:
        """Loss sum, target tokens and (kinds selected on BLEU) the greedy hypotheses' 10 BLEU statistics of
        one validation batch; `data`: the split it comes from (its reference texts); `bleu_rows`: which of its
        rows BLEU decodes (`bleu_sample`; None: all)."""
        loss_sum = self._loss(batch, reduction="sum")
        n_tokens = (batch["tgt_out"] != PAD).sum()
        stats = [0.0] * 10
        keep = None if bleu_rows is None else torch.from_numpy(bleu_rows[batch["index"].cpu().numpy()])
        if self.bleu_tokenize is not None and (keep is None or keep.any()):
            src, lens, index = (
                batch[k] if keep is None else batch[k][keep.to(batch[k].device)] for k in ("src", "src_lens", "index")
            )
            limit = max_lengths(lens, VAL_DECODE.max_len_ratio, VAL_DECODE.max_len_offset)
            hyps = self.tokenizer.decode(greedy(self.model, src, lens, limit))
            stats = bleu_stats(hyps, data.targets(index.tolist()), self.bleu_tokenize)
        return [float(loss_sum), float(n_tokens), *stats]

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        data = self.trainer.datamodule
        sample = data.bleu_rows if self.trainer.state.fn == TrainerFn.FITTING else None  # a whole split otherwise
        self._val += torch.tensor(self.validation_batch(batch, data.val_set, sample), dtype=torch.float64)

    def on_validation_epoch_end(self) -> None:
        """Sum loss, BLEU statistics and the epoch's training counters over workers; log the epoch's metrics,
        the training ones too, before its checkpoint is reported (`RunLogger.seal`)."""
        local = torch.cat([self._val, self._train.cpu()])
        totals = self.trainer.strategy.reduce(local.to(self.device), reduce_op="sum").cpu()
        if self.trainer.sanity_checking:
            return
        val_loss = float(totals[0] / max(totals[1], 1))
        metrics = {"val_loss": val_loss, "val_ppl": math.exp(min(val_loss, 50))}
        if self.trainer.state.fn == TrainerFn.FITTING:  # not in `Trainer.validate` (checkpoint averaging)
            tokens, loss_sum, sentences, clipped, updates = totals[12:].tolist()
            metrics["tokens_per_s"] = tokens / max(self._train_seconds, 1e-9)
            metrics["lr"] = self.trainer.optimizers[0].param_groups[0]["lr"]
            if sentences:
                metrics["train_loss_epoch"] = loss_sum / sentences
            if updates:
                metrics["clipped"] = clipped / updates
                metrics["s_per_update"] = self._train_seconds * self.trainer.world_size / updates
            metrics["eval_s"] = time.perf_counter() - self._eval_t0
        if self.bleu_tokenize is not None:
            metrics["val_bleu"] = bleu_from_stats(totals[2:12].tolist())
        self.log_dict(metrics, sync_dist=False)
        if self.trainer.state.fn == TrainerFn.FITTING:
            self._reset_counters()  # the next evaluation's figures cover the updates since this one
            if self.eval_every and self.exp.optim.schedule == "plateau":
                self.lr_schedulers().step(metrics[self.monitor[0]])

    # -- optimisation -------------------------------------------------------------------------
    def parameter_groups(self) -> list[dict]:
        """Optimizer groups: weight decay on weight matrices only; none on norms, biases and embeddings
        (tied output projections are embeddings too)."""
        embeddings = {id(p) for m in self.modules() if isinstance(m, torch.nn.Embedding) for p in m.parameters()}
        decay, no_decay = [], []
        for param in self.parameters():
            (no_decay if param.ndim < 2 or id(param) in embeddings else decay).append(param)
        return [
            {"params": decay, "weight_decay": self.exp.optim.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ]

    def planned_updates(self) -> int:
        """The run's planned updates (`seqforge.training.budget.plan`): `max_steps`, or `max_epochs` epochs. Counted
        from the data module, not `trainer.estimated_stepping_batches`, which builds the training loader
        before a resumed run restores its position and so loses it (Lightning #20550)."""
        if self.trainer.max_steps > 0:
            return self.trainer.max_steps
        return self.trainer.max_epochs * self.trainer.datamodule.updates_per_epoch()

    def configure_optimizers(self):
        optim = self.exp.optim
        opt = OPTIMIZERS[optim.optimizer](self.parameter_groups(), optim)
        if optim.schedule != "plateau":
            total = 0
            if optim.schedule == "linear":  # a step plan's end is read at each step: a time budget re-plans it
                total = (lambda: self.trainer.max_steps) if self.trainer.max_steps > 0 else self.planned_updates()
            sched = torch.optim.lr_scheduler.LambdaLR(opt, step_schedule(optim.schedule, optim.warmup_steps, total))
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
        metric, mode = self.monitor
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
            opt, mode=mode, factor=optim.plateau_factor, patience=optim.plateau_patience
        )
        # evaluated every N updates: stepped after each evaluation (`on_validation_epoch_end`), as Lightning's
        # step interval counts batches within the epoch; the config keeps it in checkpoints
        period = {"frequency": 2**31} if self.eval_every else {}
        return {
            "optimizer": opt,
            "lr_scheduler": {"scheduler": sched, "monitor": metric, "interval": "epoch", **period},
        }
