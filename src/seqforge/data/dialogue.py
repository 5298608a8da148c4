"""Dialogues -> (context, response) pairs; the same context builder serves training and chat.

DailyDialog (the `dailydialog` format) is pre-tokenized English (``Hi , how are you ?``) with
typographic apostrophes (``it ’ s``, ``I ’ Ve``): its turns are detokenized with Moses rules
(:func:`clean_turn`) so that models learn, and reply in, naturally written English. Turns of any
other dialogue corpus are only normalised (no language-specific rules).
"""

from __future__ import annotations

import re
from collections import Counter
from functools import cache
from typing import TYPE_CHECKING

from datasets import Dataset, DatasetDict

from seqforge.corpora.base import CorpusError
from seqforge.data.text import normalize

if TYPE_CHECKING:  # the chatbot kind owns its config and imports this module
    from seqforge.tasks.chatbot import ChatData

SEP_TEXT = " <sep> "  # the tokenizer's turn-separator special token, between context turns
_APOSTROPHE = re.compile(r"\s*[’‘]\s*")
_CONTRACTION = re.compile(r"'(S|Re|RE|Ve|VE|Ll|LL|D|M|T)\b")


@cache
def _detokenizer():
    from sacremoses import (
        MosesDetokenizer,  # half a second to import: only DailyDialog-style turns need it
    )

    return MosesDetokenizer(lang="en")


def clean_turn(text: str) -> str:
    """One corpus turn -> natural text: straight apostrophes, joined contractions, no spaced punctuation."""
    text = _APOSTROPHE.sub("'", normalize(text))
    text = _CONTRACTION.sub(lambda m: "'" + m.group(1).lower(), text)
    return normalize(_detokenizer().detokenize(text.split()))


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


def dialogue_splits(dialogues: dict[str, list[list[str]]], malformed: dict[str, int], cfg: ChatData,
                    where: str) -> tuple[DatasetDict, dict]:
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
