"""Lightning module and data module shared by every model family and task."""

from __future__ import annotations

import math
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping

import lightning.pytorch as pl
import numpy as np
import torch
import torch.nn.functional as F
from datasets import Dataset as HFDataset
from lightning.pytorch.loggers import MLFlowLogger
from lightning.pytorch.utilities import rank_zero_only
from lightning.pytorch.trainer.states import TrainerFn
from torch.utils.data import DataLoader, Dataset

from seqforge.config import DecodeCfg, ExperimentCfg, TrainCfg
from seqforge.data.batching import ResumableLoader, TokenBudgetBatchSampler, collate
from seqforge.data.tokenizer import PAD, SubwordTokenizer
from seqforge.decoding import greedy, max_lengths
from seqforge.metric_outbox import MetricOutbox
from seqforge.metrics import bleu_from_stats, bleu_stats
from seqforge.models import build_model
from seqforge.tasks import task_kind

VAL_DECODE = DecodeCfg()  # length caps for the per-epoch greedy validation BLEU


def step_schedule(kind: str, warmup_steps: int, total_steps: int) -> Callable[[int], float]:
    """The learning-rate factor of update `step`: linear warm-up, then inverse-sqrt decay, or (`linear`)
    a linear decay that reaches zero at update `total_steps`, the run's budget."""
    warmup = max(warmup_steps, 1)
    if kind == "inverse_sqrt":
        return lambda step: min((step + 1) / warmup, math.sqrt(warmup / (step + 1)))
    total = max(total_steps, warmup + 1)
    return lambda step: min((step + 1) / warmup, max(total - step, 0) / (total - warmup))


class RunLogger(MLFlowLogger):
    """Lightning's MLflow logger writing into a run its driver owns.

    Metrics are held until Ray Train has registered a checkpoint holding the work they describe: at
    each reported checkpoint `RayCheckpoints` seals what was logged before it (`seal`), and once the
    controller has registered that checkpoint (`ray_checkpoints.RegisteredCheckpoints`, through the
    `registered` queue) it goes to MLflow (`release`). A worker group restarted from a checkpoint
    redoes the work after it: its metrics reach MLflow once, from the attempt the run goes on from;
    those of a killed attempt die with it. Each checkpoint also carries what MLflow may not hold yet
    (`unsent`): a worker killed before it sent what a registered checkpoint released would lose it, so a
    worker group restarted from that checkpoint sends it again (`resend`), with the same timestamps:
    MLflow's SQL stores keep one copy of a metric logged twice. Released metrics go out through a `MetricOutbox`: a
    tracking-server outage neither stalls nor fails training, and what was logged meanwhile is sent
    once the server answers again (`notify` tells the person watching). It never ends the run: a
    worker of a Tune trial that ASHA stopped could otherwise mark the run finished or failed after
    the sweep recorded it as stopped.
    """

    def __init__(self, tracking_uri: str, run_id: str, notify: Callable[[str], None], registered=None,
                 flush_timeout: float = 600.0, register_timeout: float = 60.0) -> None:
        """`registered`: a queue of the updates of the checkpoints Ray registers (rank 0 only; None elsewhere);
        `register_timeout`: how long the end of training waits for its last checkpoint to be registered."""
        from mlflow import MlflowClient

        super().__init__(tracking_uri=tracking_uri, run_id=run_id)
        client = MlflowClient(tracking_uri)
        # one request may carry several queued batches: each (key, step, time, value) once, as MLflow requires
        self.outbox = MetricOutbox(lambda metrics: client.log_batch(run_id, metrics=list(
            {(m.key, m.step, m.timestamp, m.value): m for m in metrics}.values())), notify)
        self.tracked_run, self.flush_timeout, self.register_timeout = run_id, flush_timeout, register_timeout
        self.lock = threading.Condition()
        self.held: list[list] = []  # metric batches logged since the last reported checkpoint
        self.sealed: deque[tuple[int, list[list]]] = deque()  # (a reported checkpoint's update, what came before it)
        self.last_sealed = self.last_registered = -1  # updates of the last checkpoint reported, and registered
        self.watching = registered is not None
        if registered is not None:
            threading.Thread(target=self._release_registered, args=(registered,), name="mlflow-commits",
                             daemon=True).start()

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        from mlflow.entities import Metric

        now, step = int(time.time() * 1000), step or 0
        batch = [Metric(key, float(value), now, step) for key, value in metrics.items()]
        with self.lock:
            if step >= self.last_sealed:
                self.held.append(batch)
            elif self.last_registered >= self.last_sealed:  # the work of a checkpoint Ray has registered
                self.outbox.put(batch)
            elif self.sealed and self.sealed[-1][0] == self.last_sealed:  # Lightning logs an update after the
                self.sealed[-1][1].append(batch)  # `on_train_batch_end` that reported a resume point at it
            else:
                self.sealed.append((self.last_sealed, [batch]))

    def seal(self, step: int) -> None:
        """A checkpoint at update `step` was reported: what was logged before it, and what is logged later for
        updates before it (Lightning logs an update after the callback that reported it), goes to MLflow once
        Ray has registered that checkpoint."""
        with self.lock:
            self.last_sealed = step
            if self.held:
                self.sealed.append((step, self.held))
                self.held = []

    def release(self, step: int) -> None:
        """Ray registered the checkpoint at update `step`: send what was sealed with it and those before it."""
        with self.lock:
            self.last_registered = max(self.last_registered, step)
            while self.sealed and self.sealed[0][0] <= step:
                for batch in self.sealed.popleft()[1]:
                    self.outbox.put(batch)
            self.lock.notify_all()

    def unsent(self) -> dict:
        """What MLflow may not hold yet (queued in the outbox, sealed, held), as plain lists for a checkpoint."""
        with self.lock:
            batches = [*self.outbox.queued(), *(b for _, sealed in self.sealed for b in sealed), *self.held]
        return {"run_id": self.tracked_run,
                "batches": [[[m.key, m.value, m.timestamp, m.step] for m in batch] for batch in batches]}

    @rank_zero_only
    def resend(self, unsent: dict) -> None:
        """Resumed from a checkpoint Ray registered, carrying `unsent`: send what it holds for this run (a stage
        rerun after a killed driver tracks a new run, and leaves the old one's)."""
        from mlflow.entities import Metric

        if unsent["run_id"] == self.tracked_run:
            for batch in unsent["batches"]:
                self.outbox.put([Metric(*metric) for metric in batch])

    def _release_registered(self, registered) -> None:
        """Release each checkpoint's metrics as Ray registers it, and send them at once (a Tune trial that
        ASHA stops after this report is ended soon); ends with the queue (the run's end)."""
        while True:
            try:
                step = registered.get(timeout=1.0)
            except queue.Empty:
                continue
            except Exception:  # noqa: BLE001 -- the queue's actor is gone: the run ended
                return
            self.release(step)
            self.outbox.flush(2.0)

    def finalize(self, status: str = "success") -> None:
        """Training ended. On success, once Ray has registered its last checkpoint, send everything still
        held: nothing will be redone. Otherwise (a failure, or a last checkpoint that is never registered
        because a peer died and the worker group restarts from an earlier one) send only what registered
        checkpoints hold. The run's owner ends the run (the train stage's `mlflow.start_run`, or the sweep's
        summary)."""
        with self.lock:
            done = status == "success" and self.lock.wait_for(
                lambda: not self.watching or self.last_registered >= self.last_sealed, self.register_timeout)
            if done:
                for _, batches in self.sealed:
                    for batch in batches:
                        self.outbox.put(batch)
                for batch in self.held:
                    self.outbox.put(batch)
                self.sealed.clear()
                self.held = []
        if unsent := self.outbox.flush(self.flush_timeout):
            self.outbox.notify(f"{unsent} metric batches not sent: the MLflow tracking server did not answer "
                               f"within {self.flush_timeout:.0f} s of the end of training")


class TokenizedSplit(Dataset):
    """One split of token ids over Arrow (memory-mapped from disk, or in Ray's shared object store);
    lengths are numpy arrays. Rows are read from the Arrow table per batch."""

    def __init__(self, data: HFDataset) -> None:
        import pyarrow.compute as pc

        self.data = data
        table = self.data.data
        src, tgt = (pc.list_value_length(table.column(c)).to_numpy() for c in ("src_ids", "tgt_ids"))
        self.lengths = np.stack([src + 1, tgt + 1], axis=1).astype(np.int32)  # + EOS / BOS
        self._ids = self.data.select_columns(["src_ids", "tgt_ids"])

    def __len__(self) -> int:
        return len(self.lengths)

    def __getitems__(self, indices: list[int]) -> list[dict]:
        rows = self._ids[indices]
        return [{"src_ids": s, "tgt_ids": t, "index": i}
                for s, t, i in zip(rows["src_ids"], rows["tgt_ids"], indices, strict=True)]

    def __getitem__(self, i: int) -> dict:
        return self.__getitems__([i])[0]

    def targets(self, indices: list[int]) -> list[str]:
        """Reference texts of rows `indices` (validation BLEU)."""
        return self.data.select_columns(["target"])[indices]["target"]


class Seq2SeqDataModule(pl.LightningDataModule):
    """Token-budget batches of a task's `train` and `validation` splits (`splits`: from disk, or
    `seqforge.data.shipping.splits` on a Ray worker)."""

    def __init__(self, splits: Mapping[str, HFDataset], train_cfg: TrainCfg) -> None:
        super().__init__()
        self.splits, self.cfg = splits, train_cfg

    def setup(self, stage: str | None = None) -> None:
        self.train_set = TokenizedSplit(self.splits["train"])
        self.val_set = TokenizedSplit(self.splits["validation"])

    def _sampler(self, data: TokenizedSplit, train: bool) -> TokenBudgetBatchSampler:
        return TokenBudgetBatchSampler(
            data.lengths, self.cfg.batch_tokens, shuffle=train, seed=self.cfg.seed,
            rank=self.trainer.global_rank, world_size=self.trainer.world_size, even=train,
        )

    def updates_per_epoch(self) -> int:
        """Optimizer updates in one training epoch on this rank (the last partial accumulation steps too)."""
        return math.ceil(len(self._sampler(self.train_set, train=True)) / self.cfg.accumulate_grad_batches)

    def train_dataloader(self) -> ResumableLoader:
        loop = self.trainer.fit_loop.epoch_loop
        return ResumableLoader(self.train_set, self._sampler(self.train_set, train=True),
                               trained=lambda: loop.batch_progress.current.processed)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val_set, batch_sampler=self._sampler(self.val_set, train=False), collate_fn=collate)


class Seq2SeqModule(pl.LightningModule):
    """Label-smoothed training, clipped gradients, per-epoch validation loss/perplexity, and for
    translation greedy validation BLEU (the metric it is selected on; chat models use the loss)."""

    def __init__(self, experiment: dict, src_vocab: int, tgt_vocab: int, tokenizer: str, kind: str,
                 bleu_tokenize: str | None = None) -> None:
        """`tokenizer`: the task's tokenizer as JSON text (`SubwordTokenizer.dumps`)."""
        super().__init__()
        self.save_hyperparameters(ignore=["tokenizer"], logger=False)
        self.exp = ExperimentCfg.model_validate(experiment)
        self.model = build_model(self.exp.model, src_vocab, tgt_vocab)
        self.tokenizer = SubwordTokenizer.loads(tokenizer)
        self.monitor = task_kind(kind).monitor
        self.bleu_tokenize = bleu_tokenize  # validation BLEU's sacreBLEU tokenizer (kinds selected on BLEU)
        self._reset_epoch_counters()

    @classmethod
    def from_loop_config(cls, config: dict) -> Seq2SeqModule:
        """The module a training run's loop config (`train.loop_config`) describes."""
        return cls(config["experiment"], config["src_vocab"], config["tgt_vocab"], config["tokenizer"],
                    config["kind"], config["bleu_tokenize"])

    def _reset_epoch_counters(self) -> None:
        # training tokens, loss × sentences, sentences, clipped updates, updates: tensors, no per-step sync
        self._train = torch.zeros(5, dtype=torch.float64, device=self.device)
        self._t0 = time.perf_counter()

    def _loss(self, batch: dict, reduction: str = "mean") -> torch.Tensor:
        logits = self.model(batch["src"], batch["src_lens"], batch["tgt_in"])
        return F.cross_entropy(
            logits.flatten(0, 1).float(), batch["tgt_out"].flatten(), ignore_index=PAD,
            label_smoothing=self.exp.optim.label_smoothing if self.training else 0.0,
            reduction=reduction,
        )

    # -- training -----------------------------------------------------------------------------
    def on_train_start(self) -> None:  # a run resumed mid-epoch does not start that epoch again
        self._reset_epoch_counters()

    def on_train_epoch_start(self) -> None:
        self._reset_epoch_counters()

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
        self._train_seconds = time.perf_counter() - self._t0
        self._val = torch.zeros(12, dtype=torch.float64)  # loss_sum, n_tokens, 10 BLEU stats

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        loss_sum = self._loss(batch, reduction="sum")
        n_tokens = (batch["tgt_out"] != PAD).sum()
        stats = [0.0] * 10
        if self.bleu_tokenize is not None:
            limit = max_lengths(batch["src_lens"], VAL_DECODE.max_len_ratio, VAL_DECODE.max_len_offset)
            hyps = self.tokenizer.decode(greedy(self.model, batch["src"], batch["src_lens"], limit))
            refs = self.trainer.datamodule.val_set.targets(batch["index"].tolist())
            stats = bleu_stats(hyps, refs, self.bleu_tokenize)
        self._val += torch.tensor([float(loss_sum), float(n_tokens), *stats], dtype=torch.float64)

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
        if self.bleu_tokenize is not None:
            metrics["val_bleu"] = bleu_from_stats(totals[2:12].tolist())
        self.log_dict(metrics, sync_dist=False)

    # -- optimisation -------------------------------------------------------------------------
    def parameter_groups(self) -> list[dict]:
        """AdamW groups: weight decay on weight matrices only; none on norms, biases and embeddings
        (tied output projections are embeddings too)."""
        embeddings = {id(p) for m in self.modules() if isinstance(m, torch.nn.Embedding) for p in m.parameters()}
        decay, no_decay = [], []
        for param in self.parameters():
            (no_decay if param.ndim < 2 or id(param) in embeddings else decay).append(param)
        return [{"params": decay, "weight_decay": self.exp.optim.weight_decay},
                {"params": no_decay, "weight_decay": 0.0}]

    def planned_updates(self) -> int:
        """The run's update budget: `max_epochs` epochs, or `max_steps` if fewer. Counted from the data
        module, not `trainer.estimated_stepping_batches`, which builds the training loader before a
        resumed run restores its position and so loses it (Lightning #20550)."""
        epochs = self.trainer.max_epochs * self.trainer.datamodule.updates_per_epoch()
        return min(epochs, self.trainer.max_steps) if self.trainer.max_steps > 0 else epochs

    def configure_optimizers(self):
        optim = self.exp.optim
        opt = torch.optim.AdamW(self.parameter_groups(), lr=optim.lr, betas=optim.betas)
        if optim.schedule != "plateau":
            total = self.planned_updates() if optim.schedule == "linear" else 0
            sched = torch.optim.lr_scheduler.LambdaLR(opt, step_schedule(optim.schedule, optim.warmup_steps, total))
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
        metric, mode = self.monitor
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
            opt, mode=mode, factor=optim.plateau_factor, patience=optim.plateau_patience
        )
        return {
            "optimizer": opt,
            "lr_scheduler": {"scheduler": sched, "monitor": metric, "interval": "epoch"},
        }
