"""text_pair: two aligned plain-text files (optionally .gz), line i of one translating line i of the other."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

from seqforge.config.base import LANG_PATTERN
from seqforge.corpora.base import ALL, CorpusError, Row, local_sources, text_lines
from seqforge.corpora.registry import CorpusCfg, CorpusFormat, register_format


@register_format("text_pair")
class TextPair(CorpusFormat):
    name = "text_pair"

    def read(self, corpus: CorpusCfg, root: Path) -> Iterator[Row]:
        paths = {lang: root / str(corpus.columns[lang]) for lang in corpus.languages}
        streams = {lang: text_lines(path) for lang, path in paths.items()}
        counts = dict.fromkeys(paths, 0)
        while True:
            row = {}
            for lang, stream in streams.items():
                line = next(stream, None)
                if line is not None:
                    counts[lang] += 1
                    row[lang] = line
            if not row:
                return
            if len(row) != len(streams):
                for lang, stream in streams.items():  # count the rest of the longer file for the message
                    counts[lang] += sum(1 for _ in stream)
                sizes = " but ".join(f"{paths[lang]} has {n} lines" for lang, n in counts.items())
                raise CorpusError(f"misaligned parallel files: {sizes}")
            yield {"split": ALL, **row}

    def stage(self, sources: list[str], columns: dict, stage: Path) -> tuple[dict, list[str], str]:
        files = local_sources(self.name, sources, 2)
        langs = list(columns) or [_suffix_lang(f) for f in files]
        if len(langs) != 2 or langs[0] == langs[1]:
            raise CorpusError(f"--columns: text_pair needs two different languages, got {langs}")
        if columns and sorted(str(c) for c in columns.values()) != ["0", "1"]:
            raise CorpusError("--columns: text_pair columns are the --source files, 0 and 1 (e.g. ko=0,en=1)")
        picked = [files[int(columns[lang])] if columns else f for lang, f in zip(langs, files, strict=True)]
        if picked[0].name == picked[1].name:
            raise CorpusError("--source: the two files need different names")
        for path in picked:
            shutil.copyfile(path, stage / path.name)
        return {lang: p.name for lang, p in zip(langs, picked, strict=True)}, langs, str(picked[0].parent.resolve())


def _suffix_lang(path: Path) -> str:
    name = path.name.removesuffix(".gz")
    lang = name.rsplit(".", 1)[-1] if "." in name else ""
    if not re.match(LANG_PATTERN, lang):
        raise CorpusError(
            f"--source: {path}: cannot tell its language from the file name; give --columns LANG=0,LANG=1"
        )
    return lang
