"""DailyDialog text -> (context, response) pairs; the same context builder serves training and chat.

A dialogue is one line of turns separated by ``__eou__``. The corpus is pre-tokenized
(``Hi , how are you ?``) and mixes typographic apostrophes (``it ’ s``, ``I ’ Ve``); turns are
detokenized with Moses rules so that models learn, and reply in, naturally written English.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from datasets import Dataset, DatasetDict
from sacremoses import MosesDetokenizer

from seqforge.config import ChatData
from seqforge.data.prepare import CorpusError, normalize, read_lines

EOU = "__eou__"
SEP_TEXT = " <sep> "  # the tokenizer's turn-separator special token, between context turns
SPLITS = {"train": "train.txt", "validation": "validation.txt", "test": "test.txt"}
_APOSTROPHE = re.compile(r"\s*[’‘]\s*")
_CONTRACTION = re.compile(r"'(S|Re|RE|Ve|VE|Ll|LL|D|M|T)\b")
_DETOK = MosesDetokenizer(lang="en")


def clean_turn(text: str) -> str:
    """One corpus turn -> natural text: straight apostrophes, joined contractions, no spaced punctuation."""
    text = _APOSTROPHE.sub("'", normalize(text))
    text = _CONTRACTION.sub(lambda m: "'" + m.group(1).lower(), text)
    return normalize(_DETOK.detokenize(text.split()))


def parse_dialogue(line: str) -> list[str] | None:
    """Turns of one corpus line, or None when the line is malformed (no ``__eou__``, < 2 turns)."""
    if EOU not in line:
        return None
    turns = [clean_turn(t) for t in line.split(EOU)]
    turns = [t for t in turns if t]
    return turns if len(turns) >= 2 else None


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


def read_dialogues(path: Path) -> tuple[list[list[str]], int]:
    """Parsed dialogues of one split file and the number of malformed lines skipped."""
    dialogues, malformed = [], 0
    for line in read_lines(path):
        turns = parse_dialogue(line)
        if turns is None:
            malformed += 1
        else:
            dialogues.append(turns)
    if not dialogues:
        raise CorpusError(
            f"{path}: no usable dialogue ({malformed} malformed lines; expected turns separated by "
            f"{EOU!r}, at least two per line)"
        )
    return dialogues, malformed


def prepare_chatbot(raw_dir: Path, cfg: ChatData) -> tuple[DatasetDict, dict]:
    """DailyDialog split files -> `DatasetDict(train, validation, test)` of pairs, and statistics.

    Splits stay split by dialogue: a validation/test dialogue that also occurs in train is
    dropped, so no response is scored that the model saw in training. Exact duplicate pairs
    within a split are removed.
    """
    parsed = {split: read_dialogues(raw_dir / name) for split, name in SPLITS.items()}
    seen_in_train = {tuple(d) for d in parsed["train"][0]}
    splits, stats = {}, {}
    for split, (dialogues, malformed) in parsed.items():
        counts = Counter(raw=len(dialogues) + malformed, malformed_lines=malformed)
        if split != "train":
            before = len(dialogues)
            dialogues = [d for d in dialogues if tuple(d) not in seen_in_train]
            counts["dropped_dialogue_in_train"] = before - len(dialogues)
        counts["dialogues"] = len(dialogues)
        pairs, unique = [], set()
        for turns in dialogues:
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
            raise CorpusError(f"{raw_dir / SPLITS[split]}: no usable pairs ({dict(counts)})")
        splits[split] = Dataset.from_list(pairs)
        stats[split] = {
            **counts,
            "context_tokens_mean": round(sum(_words(p["source"]) for p in pairs) / len(pairs), 2),
            "response_tokens_mean": round(sum(_words(p["target"]) for p in pairs) / len(pairs), 2),
        }
    return DatasetDict(splits), stats
