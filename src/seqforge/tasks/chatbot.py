"""Chatbot: dialogues -> (context, response) pairs; dialogue metrics (BLEU-1/2, distinct-n, ...)."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import pyarrow as pa
from datasets import DatasetDict

from seqforge.config import ChatbotTask, CorpusCfg, ServeCfg
from seqforge.data.dialogue import build_context, clean_turn, dialogue_splits
from seqforge.data.text import normalize
from seqforge.tasks.base import RequestError, TaskKind, checked_texts


def turn_cleaner(corpus_format: str, form: str) -> Callable[[str], str]:
    """How turns are cleaned, in prepare and at inference: DailyDialog's detokenization, else normalisation."""
    return clean_turn if corpus_format == "dailydialog" else partial(normalize, form=form)


class Chatbot(TaskKind):
    name = "chatbot"
    monitor = ("val_loss", "min")
    primary_metric = "test_bleu_2"
    shown_metrics = ("bleu_1", "bleu_2", "corpus_bleu", "distinct_1", "distinct_2", "mean_length",
                     "top10_share", "ppl")
    input_column = "conversation"
    output_column = "reply"
    description = ("Open-domain chatbot. Input: a `conversation` column (each row the turns so far, newest "
                   "last); output: `reply`.")
    templates = ("chatbot_gru_bahdanau", "chatbot_transformer")

    def languages(self, corpus: CorpusCfg, src: str | None, tgt: str | None) -> dict[str, str]:
        if not corpus.dialogue:
            raise ValueError(f"--corpus: {corpus.name} is a parallel corpus; a chatbot needs dialogues")
        if tgt and tgt != (src or tgt):
            raise ValueError("--src/--tgt: a chatbot answers in the language it is spoken to (give one)")
        return {"lang": src or tgt or "en"}

    def pairs(self, rows: pa.Table, task: ChatbotTask, corpus: CorpusCfg, scratch: Path) -> tuple[DatasetDict, dict]:
        from seqforge.data.pairs import split_masks

        clean = turn_cleaner(corpus.format, task.data.normalization)
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
        from seqforge.metrics import dialogue_scores

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
        clean = turn_cleaner(meta["corpus_format"], data["normalization"])
        window = data["context_turns"]
        return [build_context([c for c in map(clean, turns) if c][-window:], data["max_context_tokens"])
                for turns in requests]

    def input_schema(self):
        from mlflow.types import ColSpec, DataType
        from mlflow.types.schema import Array

        return ColSpec(Array(DataType.string), self.input_column)

    def example(self) -> list:
        return [["Hi, how are you?", "Fine, thanks. And you?"]]
