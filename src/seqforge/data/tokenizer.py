"""Subword tokenizers, trained on the train split and saved as one file.

Two libraries behind one interface: Hugging Face `tokenizers` (BPE / unigram) and `sentencepiece`
(unigram / BPE, `character_coverage` and byte fallback, so Korean, Chinese and Japanese text
round-trips exactly). Both use the same special-token ids (:data:`SPECIALS`).
"""

from __future__ import annotations

import base64
import io
import json
import re
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Literal, Protocol

from seqforge.config.shared import TokenizerCfg

SPECIALS = ["<pad>", "<unk>", "<s>", "</s>", "<sep>"]
PAD, UNK, BOS, EOS, SEP = range(len(SPECIALS))
FORMAT = "seqforge-tokenizer/2"
Side = Literal["source", "target"]


class SideModel(Protocol):
    """One trained subword model: what the data path, decoding and serving need of it."""

    def encode(self, texts: list[str]) -> list[list[int]]: ...
    def decode(self, ids: list[list[int]]) -> list[str]: ...
    def id_to_token(self, i: int) -> str: ...
    def vocab_size(self) -> int: ...
    def dump(self) -> str: ...


class HFModel:
    """A Hugging Face `tokenizers` model (Metaspace pre-tokenizer; text comes normalised by the data path)."""

    library = "tokenizers"

    def __init__(self, tok) -> None:
        self.tok = tok

    @classmethod
    def train(cls, texts: Iterable[str], cfg: TokenizerCfg) -> HFModel:
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

        if cfg.model == "bpe":
            tok = Tokenizer(models.BPE(unk_token="<unk>"))
            trainer = trainers.BpeTrainer(
                vocab_size=cfg.vocab_size, min_frequency=cfg.min_frequency, special_tokens=SPECIALS, show_progress=False
            )
        else:
            tok = Tokenizer(models.Unigram())
            trainer = trainers.UnigramTrainer(
                vocab_size=cfg.vocab_size, special_tokens=SPECIALS, unk_token="<unk>", show_progress=False
            )
        tok.pre_tokenizer = pre_tokenizers.Metaspace(prepend_scheme="always")
        tok.decoder = decoders.Metaspace(prepend_scheme="always")
        tok.train_from_iterator(texts, trainer=trainer)
        return cls(tok)

    @classmethod
    def load(cls, payload: str) -> HFModel:
        from tokenizers import Tokenizer

        return cls(Tokenizer.from_str(payload))

    def encode(self, texts: list[str]) -> list[list[int]]:
        return [enc.ids for enc in self.tok.encode_batch_fast(texts, add_special_tokens=False)]  # no offsets

    def decode(self, ids: list[list[int]]) -> list[str]:
        return self.tok.decode_batch(ids, skip_special_tokens=True)

    def id_to_token(self, i: int) -> str:
        return self.tok.id_to_token(i)

    def vocab_size(self) -> int:
        return self.tok.get_vocab_size()

    def dump(self) -> str:
        return self.tok.to_str()


_TOO_SMALL = re.compile(r"Vocabulary size is smaller than required_chars\. (\d+) vs (\d+)")


class SPModel:
    """A `sentencepiece` model; text is normalised by the data path (identity rule here), so it round-trips."""

    library = "sentencepiece"

    def __init__(self, proto: bytes) -> None:
        import sentencepiece as spm

        self.proto = proto
        self.sp = spm.SentencePieceProcessor(model_proto=proto)

    @classmethod
    def train(cls, texts: Iterable[str], cfg: TokenizerCfg) -> SPModel:
        import sentencepiece as spm

        sentences = list(texts)  # sentencepiece holds its training sentences in memory anyway
        vocab = cfg.vocab_size
        while True:
            model = io.BytesIO()
            try:
                spm.SentencePieceTrainer.train(
                    sentence_iterator=iter(sentences),
                    model_writer=model,
                    vocab_size=vocab,
                    model_type=cfg.model,
                    character_coverage=cfg.character_coverage,
                    byte_fallback=cfg.byte_fallback,
                    pad_id=PAD,
                    unk_id=UNK,
                    bos_id=BOS,
                    eos_id=EOS,
                    user_defined_symbols=SPECIALS[SEP:],
                    normalization_rule_name="identity",
                    hard_vocab_limit=False,
                    minloglevel=2,
                    num_threads=2,
                )
                return cls(model.getvalue())
            except RuntimeError as err:
                found = _TOO_SMALL.search(str(err))
                if not found or vocab > int(found.group(1)):
                    raise
                vocab = int(found.group(2)) + 16
                print(
                    f"tokenizer: vocab_size {cfg.vocab_size} cannot hold every character "
                    f"(character_coverage {cfg.character_coverage}); using {vocab}",
                    file=sys.stderr,
                )

    @classmethod
    def load(cls, payload: str) -> SPModel:
        return cls(base64.b64decode(payload))

    def encode(self, texts: list[str]) -> list[list[int]]:
        return self.sp.encode(texts, num_threads=2)

    def decode(self, ids: list[list[int]]) -> list[str]:
        return self.sp.decode([[i for i in row if i >= len(SPECIALS) or i == UNK] for row in ids])

    def id_to_token(self, i: int) -> str:
        return self.sp.id_to_piece(i)

    def vocab_size(self) -> int:
        return self.sp.get_piece_size()

    def dump(self) -> str:
        return base64.b64encode(self.proto).decode()


LIBRARIES: dict[str, type[HFModel] | type[SPModel]] = {"tokenizers": HFModel, "sentencepiece": SPModel}


class SubwordTokenizer:
    """Source and target subword models (the same object when the vocabulary is joint)."""

    def __init__(self, source: SideModel, target: SideModel, joint: bool) -> None:
        self.sides = {"source": source, "target": target}
        self.joint = joint

    @classmethod
    def train(cls, sources: Iterable[str], targets: Iterable[str], cfg: TokenizerCfg) -> SubwordTokenizer:
        """Train from iterables of text (streamed; `sentencepiece` keeps its sample in memory)."""
        library = LIBRARIES[cfg.library]
        if cfg.joint:
            tok = library.train(_chain(sources, targets), cfg)
            return cls(tok, tok, joint=True)
        return cls(library.train(sources, cfg), library.train(targets, cfg), joint=False)

    @property
    def library(self) -> str:
        return self.sides["source"].library

    def vocab_size(self, side: Side) -> int:
        return self.sides[side].vocab_size()

    def encode(self, texts: list[str], side: Side) -> list[list[int]]:
        """Token ids without BOS/EOS (batching adds them)."""
        return self.sides[side].encode(texts)

    def decode(self, ids: list[list[int]], side: Side = "target") -> list[str]:
        """Detokenized text; special tokens are dropped."""
        return self.sides[side].decode(ids)

    def tokens(self, ids: list[int], side: Side = "target") -> list[str]:
        """The subword strings of `ids`, special tokens included (for display)."""
        return [self.sides[side].id_to_token(i) for i in ids]

    def dumps(self) -> str:
        """The whole tokenizer as one JSON text (what `save` writes, what `loads` reads)."""
        return json.dumps(
            {
                "format": FORMAT,
                "library": self.library,
                "joint": self.joint,
                "source": self.sides["source"].dump(),
                "target": None if self.joint else self.sides["target"].dump(),
            }
        )

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.dumps())

    @classmethod
    def loads(cls, text: str, origin: str = "tokenizer") -> SubwordTokenizer:
        """A tokenizer from `dumps`'s JSON text; `origin` names where it came from in errors."""
        payload = json.loads(text)
        if payload.get("format") != FORMAT:
            raise ValueError(f"{origin}: not a {FORMAT} file")
        library = LIBRARIES[payload["library"]]
        source = library.load(payload["source"])
        target = source if payload["joint"] else library.load(payload["target"])
        return cls(source, target, joint=payload["joint"])

    @classmethod
    def load(cls, path: Path) -> SubwordTokenizer:
        try:
            text = Path(path).read_text()
        except FileNotFoundError:
            raise FileNotFoundError(f"{path}: tokenizer file not found") from None
        return cls.loads(text, str(path))


def _chain(*parts: Iterable[str]) -> Iterator[str]:
    for part in parts:
        yield from part
