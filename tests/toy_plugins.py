"""A model family, a task kind and a corpus format that live in this test module only: each registers itself,
and a conf file in a test's own conf/ uses it. Nothing under src/ knows them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar, Literal

import pyarrow as pa
import torch
from datasets import DatasetDict
from pydantic import Field
from torch import Tensor, nn

from seqforge.config.base import Lang
from seqforge.config.shared import ServeCfg
from seqforge.corpora.base import ALL, CorpusError, Row, copy_one_file, text_lines
from seqforge.corpora.registry import CorpusCfg, CorpusFormat, one_file, register_format
from seqforge.data.splits import split_masks, write_splits
from seqforge.models.base import DecoderState, FamilyCfg, Seq2Seq
from seqforge.models.registry import register_family
from seqforge.tasks.base import DataCfg, TaskCfg, TaskKind, checked_texts
from seqforge.tasks.metrics import corpus_scores
from seqforge.tasks.registry import register_kind


class CopyCfg(FamilyCfg):
    arch: Literal["copy"]
    emb_dim: int = Field(32, gt=0)


@register_family("copy")
class CopySeq2Seq(Seq2Seq):
    """Output token t is read from source position t: the smallest model that can learn to copy."""

    config = CopyCfg
    width: ClassVar[dict[str, int]] = {"model.emb_dim": 1}

    @classmethod
    def describe(cls, cfg: dict) -> str:
        return f"positional copy, embeddings {cfg['emb_dim']}"

    def __init__(self, cfg: CopyCfg, src_vocab: int, tgt_vocab: int) -> None:
        super().__init__()
        self.embed, self.out = nn.Embedding(src_vocab, cfg.emb_dim), nn.Linear(cfg.emb_dim, tgt_vocab)

    def encode(self, src: Tensor, src_lens: Tensor) -> DecoderState:
        return DecoderState({"src": self.embed(src)}, {"step": torch.zeros(len(src), dtype=torch.long)})

    def decode_step(self, prev_tokens: Tensor, state: DecoderState) -> tuple[Tensor, DecoderState]:
        src, step = state.memory["src"], state.hyps["step"]
        rows = torch.arange(len(step)) // (len(step) // len(src))
        logits = self.out(src[rows, step.clamp(max=src.size(1) - 1)])
        return logits.log_softmax(-1), DecoderState(state.memory, {"step": step + 1})

    def forward(self, src: Tensor, src_lens: Tensor, tgt_in: Tensor) -> Tensor:
        positions = torch.arange(tgt_in.size(1)).clamp(max=src.size(1) - 1)
        return self.out(self.embed(src)[:, positions])


class EchoData(DataCfg):
    pass


class EchoTask(TaskCfg):
    kind: Literal["echo"]
    lang: Lang
    data: EchoData = EchoData()

    @property
    def src_lang(self) -> str:
        return self.lang

    @property
    def tgt_lang(self) -> str:
        return self.lang


@register_kind("echo")
class Echo(TaskKind):
    """Sentence -> the same sentence, from one language of a parallel corpus."""

    name = "echo"
    config = EchoTask
    monitor = ("val_loss", "min")
    primary_metric = "test_bleu"
    shown_metrics = ("bleu",)
    input_column, output_column = "text", "echo"
    description = "Echo: the model repeats its input."
    templates = ("copy",)

    def languages(
        self, corpus: CorpusCfg, src: str | None, tgt: str | None, keys: tuple[str, str] = ("--src", "--tgt")
    ) -> dict[str, str]:
        if src not in corpus.languages:
            raise ValueError(f"{keys[0]}: language {src!r} is not in corpus {corpus.name}")
        return {"lang": src}

    def pairs(self, rows: pa.Table, task: Any, corpus: CorpusCfg, scratch: Path) -> tuple[DatasetDict, dict]:
        text = rows.column(task.lang)
        table = pa.table({"split": rows.column("split"), "source": text, "target": text})
        masks = split_masks(table, "source", corpus.split, corpus.seed, f"conf/corpora/{corpus.name}.yaml")
        return write_splits(table, masks, ["source", "target"], scratch), {
            s: {"kept": int(m.sum())} for s, m in masks.items()
        }

    def scores(self, hyps: list[str], refs: list[str], task: dict) -> dict:
        return corpus_scores(hyps, refs)

    def requests(self, values: list, limits: ServeCfg) -> list:
        return checked_texts(values, limits, "text")

    def sources(self, requests: list, meta: dict) -> list[str]:
        return requests

    def example(self) -> list:
        return ["hello"]


@register_format("lines")
class Lines(CorpusFormat):
    """One pair per line, its sides separated by ` ||| ` (fast_align's format)."""

    name = "lines"

    def read(self, corpus: CorpusCfg, root: Path) -> Iterator[Row]:
        path = one_file(corpus, root)
        for number, line in enumerate(text_lines(path), 1):
            sides = line.split(" ||| ")
            if len(sides) != len(corpus.languages):
                raise CorpusError(f"{path}:{number}: expected {len(corpus.languages)} sides separated by ' ||| '")
            yield {"split": ALL, **dict(zip(corpus.languages, sides, strict=True))}

    def stage(self, sources: list[str], columns: dict, stage: Path) -> tuple[dict, list[str], str]:
        return copy_one_file(self.name, sources, columns, stage)
