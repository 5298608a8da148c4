"""Text normalisation and length counting that fit the script."""

from __future__ import annotations

import re
import unicodedata
from typing import Literal

from seqforge.config import UNSPACED_LANGS, base_lang

_SPACES = re.compile(r"\s+")
Form = Literal["nfc", "nfkc"]


def normalize(text: str, form: Form = "nfc") -> str:
    """Unicode NFC (or NFKC) and whitespace clean-up (collapse runs, strip ends); no script-specific rules."""
    return _SPACES.sub(" ", unicodedata.normalize(form.upper(), text)).strip()


def length_unit(lang: str, unit: str = "auto") -> str:
    """`words`, or `chars` for scripts written without spaces (zh, ja, th, ...) when `unit` is auto."""
    if unit != "auto":
        return unit
    return "chars" if base_lang(lang) in UNSPACED_LANGS else "words"


def length(text: str, unit: str) -> int:
    return len(text.replace(" ", "")) if unit == "chars" else len(text.split())
