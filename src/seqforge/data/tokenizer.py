"""Subword tokenizer (Hugging Face `tokenizers`): trained on the train split, saved as one file."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

from seqforge.config import TokenizerCfg

SPECIALS = ["<pad>", "<unk>", "<s>", "</s>", "<sep>"]
PAD, UNK, BOS, EOS, SEP = range(len(SPECIALS))
FORMAT = "seqforge-tokenizer/1"
Side = Literal["source", "target"]


def _train_one(texts: Iterable[str], cfg: TokenizerCfg) -> Tokenizer:
    if cfg.model == "bpe":
        tok = Tokenizer(models.BPE(unk_token="<unk>"))
        trainer = trainers.BpeTrainer(
            vocab_size=cfg.vocab_size, min_frequency=cfg.min_frequency,
            special_tokens=SPECIALS, show_progress=False,
        )
    else:
        tok = Tokenizer(models.Unigram())
        trainer = trainers.UnigramTrainer(
            vocab_size=cfg.vocab_size, special_tokens=SPECIALS, unk_token="<unk>",
            show_progress=False,
        )
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace(prepend_scheme="always")
    tok.decoder = decoders.Metaspace(prepend_scheme="always")
    tok.train_from_iterator(texts, trainer=trainer)
    return tok


class SubwordTokenizer:
    """Source and target subword models (the same object when the vocabulary is joint)."""

    def __init__(self, source: Tokenizer, target: Tokenizer, joint: bool) -> None:
        self.sides = {"source": source, "target": target}
        self.joint = joint

    @classmethod
    def train(cls, sources: list[str], targets: list[str], cfg: TokenizerCfg) -> SubwordTokenizer:
        if cfg.joint:
            tok = _train_one(sources + targets, cfg)
            return cls(tok, tok, joint=True)
        return cls(_train_one(sources, cfg), _train_one(targets, cfg), joint=False)

    def vocab_size(self, side: Side) -> int:
        return self.sides[side].get_vocab_size()

    def encode(self, texts: list[str], side: Side) -> list[list[int]]:
        """Token ids without BOS/EOS (batching adds them)."""
        return [enc.ids for enc in self.sides[side].encode_batch(texts, add_special_tokens=False)]

    def decode(self, ids: list[list[int]], side: Side = "target") -> list[str]:
        """Detokenized text; special tokens are dropped."""
        return self.sides[side].decode_batch(ids, skip_special_tokens=True)

    def tokens(self, ids: list[int], side: Side = "target") -> list[str]:
        """The subword strings of `ids`, special tokens included (for display)."""
        return [self.sides[side].id_to_token(i) for i in ids]

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "format": FORMAT,
            "joint": self.joint,
            "source": self.sides["source"].to_str(),
            "target": None if self.joint else self.sides["target"].to_str(),
        }
        path.write_text(json.dumps(payload))

    @classmethod
    def load(cls, path: Path) -> SubwordTokenizer:
        try:
            payload = json.loads(Path(path).read_text())
        except FileNotFoundError:
            raise FileNotFoundError(f"{path}: tokenizer file not found") from None
        if payload.get("format") != FORMAT:
            raise ValueError(f"{path}: not a {FORMAT} file")
        source = Tokenizer.from_str(payload["source"])
        target = source if payload["joint"] else Tokenizer.from_str(payload["target"])
        return cls(source, target, joint=payload["joint"])
