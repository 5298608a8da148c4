"""Chatbot: dialogues -> (context, response) pairs; dialogue metrics (BLEU-1/2, distinct-n, ...)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
from datasets import DatasetDict
from pydantic import Field

from seqforge.config.base import Lang
from seqforge.config.shared import ServeCfg
from seqforge.corpora.registry import CorpusCfg, corpus_format
from seqforge.data.dialogue import build_context, dialogue_splits
from seqforge.data.splits import split_masks
from seqforge.tasks.base import DataCfg, RequestError, TaskCfg, TaskKind, checked_texts
from seqforge.tasks.registry import register_kind


class ChatData(DataCfg):
    """How dialogues become (context, response) pairs."""

    context_turns: int = Field(3, ge=1)  # previous turns joined into the context
    max_context_tokens: int = Field(100, gt=0)  # oldest turns are dropped to fit
    max_response_tokens: int = Field(40, gt=0)  # longer responses are dropped


class ChatbotTask(TaskCfg):
    """Chatbot: dialogue context -> response, with the same stages and models as translation."""

    kind: Literal["chatbot"]
    lang: Lang = "en"
    data: ChatData = ChatData()

    @property
    def src_lang(self) -> str:
        return self.lang

    @property
    def tgt_lang(self) -> str:
        return self.lang


@register_kind("chatbot")
class Chatbot(TaskKind):
    name = "chatbot"
    config = ChatbotTask
    monitor = ("val_loss", "min")
    primary_metric = "test_bleu_2"
    shown_metrics = ("bleu_1", "bleu_2", "corpus_bleu", "distinct_1", "distinct_2", "mean_length",
                     "top10_share", "ppl")
    input_column = "conversation"
    output_column = "reply"
    description = ("Open-domain chatbot. Input: a `conversation` column (each row the turns so far, newest "
                   "last); output: `reply`.")
    templates = ("chatbot_gru_bahdanau", "chatbot_transformer")

    def languages(self, corpus: CorpusCfg, src: str | None, tgt: str | None,
                  keys: tuple[str, str] = ("--src", "--tgt")) -> dict[str, str]:
        if not corpus.dialogue:
            raise ValueError(f"--corpus: {corpus.name} is a parallel corpus; a chatbot needs dialogues")
        if tgt and tgt != (src or tgt):
            raise ValueError("--src/--tgt: a chatbot answers in the language it is spoken to (give one)")
        return {"lang": src or tgt or "en"}

    def pairs(self, rows: pa.Table, task: ChatbotTask, corpus: CorpusCfg, scratch: Path) -> tuple[DatasetDict, dict]:
        clean = corpus_format(corpus.format).turn_cleaner(task.data.normalization)
        turns = [[c for c in map(clean, dialogue) if c] for dialogue in rows.column("turns").to_pylist()]
        cleaned = pa.table({"split": rows.column("split"), "turns": pa.array(turns, pa.list_(pa.string()))})
        where = f"conf/corpora/{corpus.name}.yaml"
        dialogues, malformed = {}, {}
        for split, mask in split_masks(cleaned, "turns", corpus.split, corpus.seed, where).items():
            in_split = [turns[i] for i in np.flatnonzero(mask)]
            dialogues[split] = [t for t in in_split if len(t) >= 2]
            malformed[split] = len(in_split) - len(dialogues[split])
        return dialogue_splits(dialogues, malformed, task.data, where)

    def scores(self, hyps: list[str], refs: list[str], task: dict) -> dict:
        from seqforge.tasks.metrics import dialogue_scores

        return dialogue_scores(hyps, refs)

    def requests(self, values: list, limits: ServeCfg) -> list:
        conversations = []
        for i, turns in enumerate(values):
            turns = list(turns) if not isinstance(turns, str) and hasattr(turns, "__iter__") else None
            if not turns or len(turns) > limits.max_turns:
                raise RequestError(f"conversation {i}: expected a list of 1 to {limits.max_turns} turns")
            conversations.append(checked_texts(turns, limits, f"conversation {i} turn"))
        return conversations

    def sources(self, requests: list, meta: dict) -> list[str]:
        """The context each conversation's reply is trained on: its last `context_turns` (cleaned, non-empty)
        turns within `max_context_tokens`, however many turns the request holds."""
        data = meta["task"]["data"]
        clean = corpus_format(meta["corpus_format"]).turn_cleaner(data["normalization"])
        window = data["context_turns"]
        return [build_context([c for c in map(clean, turns) if c][-window:], data["max_context_tokens"])
                for turns in requests]

    def input_schema(self):
        from mlflow.types import ColSpec, DataType
        from mlflow.types.schema import Array

        return ColSpec(Array(DataType.string), self.input_column)

    def example(self) -> list:
        return [["Hi, how are you?", "Fine, thanks. And you?"]]
