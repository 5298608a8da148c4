"""dailydialog: one dialogue per line, turns separated by `__eou__`; turns are detokenized when cleaned."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

from seqforge.corpora.base import ALL, CorpusError, CorpusFormat, Row, local_sources, text_lines
from seqforge.corpora.registry import CorpusCfg, register_format
from seqforge.data.dialogue import clean_turn

EOU = "__eou__"
DIALOGUE_FILES = {"train": "train.txt", "validation": "validation.txt", "test": "test.txt"}


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

    def turn_cleaner(self, form: str) -> Callable[[str], str]:
        """DailyDialog's tokenized turns are detokenized (normalised too)."""
        return clean_turn
