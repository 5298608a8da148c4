"""Text normalisation and length counting that fit the script."""

from __future__ import annotations

import re
import unicodedata
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from seqforge.config.base import UNSPACED_LANGS, base_lang
from seqforge.data.tokenizer import SPECIALS

Form = Literal["nfc", "nfkc"]


# A special token's string written in text (`</s>`, `<sep>`) would reach the model as that control id
_SPECIAL_TEXT = re.compile("|".join(re.escape(s) for s in SPECIALS))


def normalize(text: str, form: Form = "nfc") -> str:
    """Unicode NFC (or NFKC), whitespace runs (any `str.isspace` character) made one space, ends stripped;
    special-token strings spaced apart (`</s>` -> `< /s >`) so they stay plain text; no script-specific rules."""
    text = _SPECIAL_TEXT.sub(lambda m: f" < {m.group()[1:-1]} > ", unicodedata.normalize(form.upper(), text))
    return " ".join(text.split())


def normalize_texts(texts: pa.Array | pa.ChunkedArray, form: Form = "nfc") -> pa.Array:
    """:func:`normalize` of every text of an Arrow column."""
    return pa.array([normalize(t, form) for t in texts.to_pylist()], pa.string())


def length_unit(lang: str, unit: str = "auto") -> str:
    """`words`, or `chars` for scripts written without spaces (zh, ja, th, ...) when `unit` is auto."""
    if unit != "auto":
        return unit
    return "chars" if base_lang(lang) in UNSPACED_LANGS else "words"


def lengths(texts: pa.Array | pa.ChunkedArray, unit: str) -> np.ndarray:
    """Lengths of normalised texts (single spaces): words, or characters other than spaces (int32)."""
    spaces = pc.count_substring(texts, " ")
    chars = pc.utf8_length(texts)
    counted = pc.subtract(chars, spaces) if unit == "chars" else pc.if_else(pc.equal(chars, 0), 0, pc.add(spaces, 1))
    return np.asarray(counted.to_numpy(zero_copy_only=False), dtype=np.int32)
