"""Chatbot: dialogues -> (context, response) pairs; dialogue metrics (BLEU-1/2, distinct-n, ...).

Each turn is normalised and detokenized by its corpus format (`CorpusFormat.detokenize`); the same context
builder serves training and chat.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
from datasets import Dataset, DatasetDict
from pydantic import Field

from seqforge.config.base import Lang
from seqforge.config.shared import ServeCfg
from seqforge.corpora.base import CorpusError
from seqforge.corpora.registry import CorpusCfg, corpus_format
from seqforge.data.splits import split_masks
from seqforge.data.text import Form, normalize
from seqforge.tasks.base import DataCfg, RequestError, TaskCfg, TaskKind, checked_texts
from seqforge.tasks.metrics import dialogue_scores
from seqforge.tasks.registry import register_kind

SEP_TEXT = " <sep> "  # the tokenizer's turn-separator special token, between context turns


class ChatData(DataCfg):
    """How dialogues become (context, response) pairs."""

    context_turns: int = Field(3, ge=1)  # previous turns joined into the context
    max_context_tokens: int = Field(100, gt=0)  # oldest turns are dropped to fit
    max_response_tokens: int = Field(40, gt=0)  # longer responses are dropped


class ChatbotTask(TaskCfg):
    """Chatbot: dialogue context -> response, with the same stages and models as translation."""

    kind: Literal["chatbot"]  # the task kind
    lang: Lang = "en"  # the language spoken (BLEU's tokenizer and the registered name follow it)
    data: ChatData = ChatData()

    @property
    def src_lang(self) -> str:
        return self.lang

    @property
    def tgt_lang(self) -> str:
        return self.lang


def turn_cleaner(fmt: str, form: Form) -> Callable[[str], str]:
    """How a turn of a corpus of format `fmt` is cleaned, in prepare and at inference: normalised, detokenized
    by its format, normalised again."""
    detokenize = corpus_format(fmt).detokenize
    return lambda turn: normalize(detokenize(normalize(turn, form)), form)


def build_context(turns: list[str], max_tokens: int) -> str:
    """Turns (oldest first) joined by the separator, dropping the oldest ones to fit `max_tokens`.

    A newest turn longer than the budget keeps its last `max_tokens` whitespace tokens.
    """
    kept: list[str] = []
    budget = max_tokens
    for turn in reversed(turns):
        words = turn.split()
        if len(words) > budget:
            if not kept:
                kept.append(" ".join(words[-budget:]))
            break
        kept.append(turn)
        budget -= len(words)
    return SEP_TEXT.join(reversed(kept))


def dialogue_pairs(turns: list[str], cfg: ChatData) -> tuple[list[dict[str, str]], Counter]:
    """Every turn after the first as a response to the `context_turns` turns before it."""
    pairs, counts = [], Counter()
    for i in range(1, len(turns)):
        if len(turns[i].split()) > cfg.max_response_tokens:
            counts["dropped_too_long"] += 1
            continue
        context = turns[max(0, i - cfg.context_turns) : i]
        source = build_context(context, cfg.max_context_tokens)
        counts["truncated_context"] += sum(len(t.split()) for t in context) > cfg.max_context_tokens
        pairs.append({"source": source, "target": turns[i]})
    return pairs, counts


def _words(text: str) -> int:
    return len(text.replace(SEP_TEXT, " ").split())


def dialogue_splits(
    dialogues: dict[str, list[list[str]]], malformed: dict[str, int], cfg: ChatData, where: str
) -> tuple[DatasetDict, dict]:
    """Cleaned dialogues per split -> `DatasetDict(train, validation, test)` of pairs, and statistics.

    Splits stay split by dialogue: a validation/test dialogue that also occurs in train is
    dropped, so no response is scored that the model saw in training. Exact duplicate pairs
    within a split are removed.
    """
    seen_in_train = {tuple(d) for d in dialogues["train"]}
    splits, stats = {}, {}
    for split in ("train", "validation", "test"):
        kept_dialogues = dialogues[split]
        counts = Counter(raw=len(kept_dialogues) + malformed[split], malformed_lines=malformed[split])
        if split != "train":
            kept_dialogues = [d for d in kept_dialogues if tuple(d) not in seen_in_train]
            counts["dropped_dialogue_in_train"] = len(dialogues[split]) - len(kept_dialogues)
        counts["dialogues"] = len(kept_dialogues)
        pairs, unique = [], set()
        for turns in kept_dialogues:
            new, c = dialogue_pairs(turns, cfg)
            counts.update(c)
            for pair in new:
                key = (pair["source"], pair["target"])
                if key in unique:
                    counts["dropped_duplicate"] += 1
                    continue
                unique.add(key)
                pairs.append(pair)
        cap = cfg.max_train_pairs if split == "train" else cfg.max_eval_pairs
        if cap is not None:
            counts["dropped_cap"] = max(0, len(pairs) - cap)
            pairs = pairs[:cap]
        counts["kept"] = len(pairs)
        if not pairs:
            raise CorpusError(f"{where}: {split}: no usable pairs ({dict(counts)})")
        splits[split] = Dataset.from_list(pairs)
        stats[split] = {
            **counts,
            "context_tokens_mean": round(sum(_words(p["source"]) for p in pairs) / len(pairs), 2),
            "response_tokens_mean": round(sum(_words(p["target"]) for p in pairs) / len(pairs), 2),
        }
    return DatasetDict(splits), stats


@register_kind("chatbot")
class Chatbot(TaskKind):
    name = "chatbot"
    config = ChatbotTask
    monitor = ("val_loss", "min")
    primary_metric = "test_bleu_2"
    shown_metrics = ("bleu_1", "bleu_2", "corpus_bleu", "distinct_1", "distinct_2", "mean_length", "top10_share", "ppl")
    input_column = "conversation"
    output_column = "reply"
    description = (
        "Open-domain chatbot. Input: a `conversation` column (each row the turns so far, newest last); output: `reply`."
    )
    templates = ("chatbot_gru_bahdanau", "chatbot_transformer")

    def languages(
        self, corpus: CorpusCfg, src: str | None, tgt: str | None, keys: tuple[str, str] = ("--src", "--tgt")
    ) -> dict[str, str]:
        if not corpus.dialogue:
            raise ValueError(f"--corpus: {corpus.name} is a parallel corpus; a chatbot needs dialogues")
        if tgt and tgt != (src or tgt):
            raise ValueError("--src/--tgt: a chatbot answers in the language it is spoken to (give one)")
        return {"lang": src or tgt or "en"}

    def pairs(self, rows: pa.Table, task: ChatbotTask, corpus: CorpusCfg, scratch: Path) -> tuple[DatasetDict, dict]:
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
        return [
            build_context([c for c in map(clean, turns) if c][-window:], data["max_context_tokens"])
            for turns in requests
        ]

    def input_schema(self):
        from mlflow.types import ColSpec, DataType
        from mlflow.types.schema import Array

        return ColSpec(Array(DataType.string), self.input_column)

    def example(self) -> list:
        return [["Hi, how are you?", "Fine, thanks. And you?"]]
