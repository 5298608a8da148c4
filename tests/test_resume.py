"""Exact resume: a run interrupted after a checkpoint and resumed from it trains on the same sequence
of batches, and ends with the same weights, as a run never interrupted (Lightning in this process; the
Ray Train path, a killed worker restarted from a checkpoint, is tested in test_pipeline)."""

from __future__ import annotations

import shutil
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from datasets import load_from_disk
from lightning.pytorch.callbacks import ModelCheckpoint

from helpers import ROOT
from seqforge.catalog.corpora import add_corpus
from seqforge.catalog.tasks import add_task
from seqforge.config.base import set_profile
from seqforge.config.shared import load_config
from seqforge.core import paths
from seqforge.data.datasets import Seq2SeqDataModule
from seqforge.data.tokenizer import SubwordTokenizer
from seqforge.experiments.config import load_experiment
from seqforge.stages.prepare import prepare_task
from seqforge.stages.tokenize import tokenize_task
from seqforge.training.worker.module import Seq2SeqModule

EPOCHS, INTERRUPT_AT = 3, 13  # updates; the sample has 9 batches per epoch: dies in the 2nd epoch


class Interrupted(Exception):
    pass


class Record(pl.Callback):
    """The batches a run trains on, as (epoch, example indices); optionally dies before update `stop`."""

    def __init__(self, stop: int | None = None) -> None:
        self.batches: list[tuple[int, list[int]]] = []
        self.stop = stop

    def on_train_batch_start(self, trainer, module, batch, batch_idx: int) -> None:
        if trainer.global_step == self.stop:
            raise Interrupted
        self.batches.append((trainer.current_epoch, batch["index"].tolist()))


@pytest.fixture(scope="module")
def task(tmp_path_factory) -> tuple[Path, str]:
    """The 50-pair Korean–English sample, prepared and tokenized in a copy of conf/."""
    root = tmp_path_factory.mktemp("resume")
    shutil.copytree(ROOT / "conf", root / "conf")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        set_profile("smoke", Path("conf"))
        add_corpus(
            "ko-en-sample",
            "tsv",
            [str(ROOT / "tests" / "data" / "ko_en.tsv")],
            {"ko": 0, "en": 1},
            {"validation": 5, "test": 5},
            conf_dir=Path("conf"),
            data_dir=Path("data"),
        )
        add_task("ko-en", "translation", "ko-en-sample", "ko", "en", "gru_bahdanau", conf_dir=Path("conf"))
        prepare_task("ko-en")
        tokenize_task("ko-en")
    return root, "ko-en"


def fit(
    task: tuple[Path, str], callbacks: list, ckpt_path: Path | None = None, every: int | None = None
) -> Seq2SeqModule:
    """Train the sample's GRU (no dropout: the resumed run can then match weight for weight), evaluated at
    each epoch's end or, as a time or update plan does, every `every` updates across epoch ends."""
    root, name = task
    exp = load_experiment(f"{name}_gru_bahdanau", root / "conf")
    exp = exp.model_copy(
        update={
            "model": exp.model.model_copy(update={"dropout": 0.0}),
            "optim": exp.optim.model_copy(update={"schedule": "linear", "warmup_steps": 3}),
        }
    )
    train_cfg = exp.train_config(load_config(root / "conf").train).model_copy(update={"batch_tokens": 150})
    pl.seed_everything(0, verbose=False)
    tokenizer = SubwordTokenizer.load(root / paths.tokenizer_file(name))
    vocab = tokenizer.vocab_size("source")  # joint vocabulary
    module = Seq2SeqModule(exp.model_dump(mode="json"), vocab, vocab, tokenizer.dumps(), "translation", "13a")
    trainer = pl.Trainer(
        max_epochs=EPOCHS,
        val_check_interval=every or 1.0,
        check_val_every_n_epoch=None if every else 1,
        accelerator="cpu",
        devices=1,
        logger=False,
        callbacks=callbacks,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        enable_checkpointing=any(isinstance(c, ModelCheckpoint) for c in callbacks),
    )
    trainer.fit(
        module,
        datamodule=Seq2SeqDataModule(load_from_disk(str(root / paths.tokenized_dir(name))), train_cfg),
        ckpt_path=ckpt_path,
    )
    return module


@pytest.mark.filterwarnings("ignore:Be aware that when using `ckpt_path`")  # the resumed run saves nothing
@pytest.mark.parametrize("where", ["mid-epoch", "epoch end", "evaluation"])
def test_a_resumed_run_sees_the_same_batches_and_ends_with_the_same_weights(task, tmp_path, where: str) -> None:
    """`evaluation`: checkpoints after evaluations every 4 updates, mid-epoch (the checkpoints of a time or
    update plan, `RayCheckpoints.on_validation_end`)."""
    every = 4 if where == "evaluation" else None
    full = Record()
    reference = fit(task, [full], every=every)
    steps_per_epoch = sum(1 for epoch, _ in full.batches if epoch == 0)
    assert 5 <= steps_per_epoch < INTERRUPT_AT < 2 * steps_per_epoch, steps_per_epoch

    saver = {
        "mid-epoch": ModelCheckpoint(tmp_path, "{step}", every_n_train_steps=4, save_top_k=-1),
        "epoch end": ModelCheckpoint(tmp_path, "{step}", save_top_k=-1, save_on_train_epoch_end=True),
        "evaluation": ModelCheckpoint(tmp_path, "{step}", save_top_k=-1, save_on_train_epoch_end=False),
    }[where]
    first = Record(stop=INTERRUPT_AT)
    with pytest.raises(Interrupted):
        fit(task, [first, saver], every=every)
    saved = {int(p.stem.split("=")[1]): p for p in tmp_path.glob("step=*.ckpt")}
    step = max(saved)  # the last checkpoint before the interruption
    assert step == (steps_per_epoch if where == "epoch end" else 12)
    assert len(first.batches) == INTERRUPT_AT

    resumed = Record()
    model = fit(task, [resumed], ckpt_path=saved[step], every=every)
    assert first.batches[:step] + resumed.batches == full.batches  # nothing replayed, nothing skipped
    for (key, a), b in zip(reference.state_dict().items(), model.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, msg=lambda m, key=key: f"{key}: {m}")


def test_a_plateau_schedule_steps_once_per_evaluation_across_epoch_ends(task) -> None:
    """A time or update plan evaluates every N updates, across epoch ends: the plateau schedule steps after
    each evaluation (Lightning's own step interval counts batches within an epoch)."""
    root, name = task
    exp = load_experiment(f"{name}_gru_bahdanau", root / "conf")
    exp = exp.model_copy(
        update={"optim": exp.optim.model_copy(update={"schedule": "plateau", "warmup_steps": 0, "plateau_patience": 0})}
    )
    train_cfg = exp.train_config(load_config(root / "conf").train).model_copy(update={"batch_tokens": 150})
    tokenizer = SubwordTokenizer.load(root / paths.tokenizer_file(name))
    vocab = tokenizer.vocab_size("source")
    every = 12  # the sample has 9 batches an epoch: evaluations fall mid-epoch and across epoch ends
    module = Seq2SeqModule(exp.model_dump(mode="json"), vocab, vocab, tokenizer.dumps(), "chatbot", None, every)
    trainer = pl.Trainer(
        max_epochs=4,
        max_steps=3 * every,
        val_check_interval=every,
        check_val_every_n_epoch=None,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        enable_checkpointing=False,
    )
    trainer.fit(module, datamodule=Seq2SeqDataModule(load_from_disk(str(root / paths.tokenized_dir(name))), train_cfg))
    assert trainer.global_step == 3 * every
    assert trainer.lr_scheduler_configs[0].scheduler.last_epoch == 3  # one step per evaluation, no more
