"""dailydialog: one dialogue per line, turns separated by `__eou__`.

DailyDialog is pre-tokenized English (``Hi , how are you ?``) with typographic apostrophes (``it ’ s``,
``I ’ Ve``): its turns are detokenized with Moses rules so that models learn, and reply in, naturally written
English.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from functools import cache
from pathlib import Path

from seqforge.corpora.base import ALL, CorpusError, Row, local_sources, text_lines
from seqforge.corpora.registry import CorpusCfg, CorpusFormat, register_format

EOU = "__eou__"
DIALOGUE_FILES = {"train": "train.txt", "validation": "validation.txt", "test": "test.txt"}
_APOSTROPHE = re.compile(r"\s*[’‘]\s*")
_CONTRACTION = re.compile(r"'(S|Re|RE|Ve|VE|Ll|LL|D|M|T)\b")


@cache
def _detokenizer():
    from sacremoses import MosesDetokenizer  # half a second to import: only DailyDialog-style turns need it

    return MosesDetokenizer(lang="en")


@register_format("dailydialog")
class DailyDialog(CorpusFormat):
    name = "dailydialog"
    dialogue = True

    def read(self, corpus: CorpusCfg, root: Path) -> Iterator[Row]:
        """A line without `__eou__` has no turns."""
        names = set(corpus.files)
        given = set(DIALOGUE_FILES.values()) <= names
        files = DIALOGUE_FILES.items() if given else [(ALL, sorted(names)[0])]
        for split, name in files:
            for line in text_lines(root / name):
                yield {"split": split, "turns": line.split(EOU) if EOU in line else []}

    def stage(self, sources: list[str], columns: dict, stage: Path) -> tuple[dict, list[str], str]:
        (src,) = local_sources(self.name, sources, 1)
        files = [src] if src.is_file() else sorted(src.glob("*.txt"))
        if not files:
            raise CorpusError(f"--source: {src}: no .txt dialogue files")
        for path in files:
            shutil.copyfile(path, stage / path.name)
        return {}, [], str(src.resolve())

    def detokenize(self, turn: str) -> str:
        """Straight apostrophes, joined contractions, no spaced punctuation."""
        turn = _APOSTROPHE.sub("'", turn)
        turn = _CONTRACTION.sub(lambda m: "'" + m.group(1).lower(), turn)
        return _detokenizer().detokenize(turn.split())
