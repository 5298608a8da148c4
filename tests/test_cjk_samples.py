"""Korean–English and Chinese–English samples (50 pairs each, in tests/data) through `corpus add`,
`task add`, the real prepare and tokenize stages (sentencepiece) and a smoke-size training
(Lightning in this process; the Ray Train path of a new task is tested end to end in test_pipeline)."""

from __future__ import annotations

import shutil
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from datasets import load_from_disk

from helpers import ROOT
from seqforge.catalog.corpora import add_corpus
from seqforge.catalog.tasks import add_task
from seqforge.config.base import set_profile
from seqforge.config.shared import load_config
from seqforge.core import paths
from seqforge.data.datasets import Seq2SeqDataModule
from seqforge.experiments.config import load_experiment
from seqforge.stages.prepare import prepare_task
from seqforge.stages.tokenize import tokenize_task
from seqforge.training.worker.module import Seq2SeqModule

DATA = Path(__file__).parent / "data"


def mean_loss(module: Seq2SeqModule, data: Seq2SeqDataModule) -> float:
    """Token-level cross-entropy of the model over the training set (no label smoothing)."""
    module.eval()
    total = tokens = 0.0
    with torch.no_grad():
        for batch in data.train_dataloader():
            total += float(module._loss(batch, reduction="sum"))
            tokens += float((batch["tgt_out"] != 0).sum())
    return total / tokens


@pytest.mark.slow
@pytest.mark.parametrize("lang", ["ko", "zh"])
def test_cjk_sample_round_trips_and_trains_at_smoke_size(tmp_path, monkeypatch, lang: str) -> None:
    shutil.copytree(ROOT / "conf", tmp_path / "conf")
    monkeypatch.chdir(tmp_path)
    conf = Path("conf")
    set_profile("smoke", conf)
    add_corpus(
        f"{lang}-en-sample",
        "tsv",
        [str(DATA / f"{lang}_en.tsv")],
        {lang: 0, "en": 1},
        {"validation": 5, "test": 5},
        conf_dir=conf,
        data_dir=Path("data"),
    )
    task = f"{lang}-en"
    add_task(task, "translation", f"{lang}-en-sample", lang, "en", "gru_bahdanau", conf_dir=conf)
    assert prepare_task(task)["train"]["kept"] == 40
    tokenizer = tokenize_task(task)
    assert tokenizer.library == "sentencepiece"

    splits = load_from_disk(str(paths.tokenized_dir(task)))
    for side in ("source", "target"):  # every prepared text comes back exactly from its ids
        texts = [t for split in splits.values() for t in split[side]]
        assert tokenizer.decode(tokenizer.encode(texts, side), side) == texts
    assert any("\uac00" <= ch <= "\ud7a3" or "\u4e00" <= ch <= "\u9fff" for ch in splits["test"]["source"][0])

    exp = load_experiment(f"{task}_gru_bahdanau", conf)
    train_cfg = exp.train_config(load_config(conf).train).model_copy(update={"batch_tokens": 400})
    pl.seed_everything(0, verbose=False)
    module = Seq2SeqModule(
        exp.model_dump(mode="json"),
        tokenizer.vocab_size("source"),
        tokenizer.vocab_size("target"),
        tokenizer.dumps(),
        "translation",
        "char",
    )
    data = Seq2SeqDataModule(splits, train_cfg)
    trainer = pl.Trainer(
        max_epochs=30,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    data.trainer = trainer  # the loaders read rank and world size from it, before fit as during
    data.setup()
    before = mean_loss(module, data)
    module.train()
    trainer.fit(module, datamodule=data)
    after = mean_loss(module, data)
    assert after < 0.7 * before, (before, after)
