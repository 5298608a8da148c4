"""jsonl: one JSON object per line; COL is a field name (`a.b` reaches into a nested object)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from seqforge.corpora.base import ALL, CorpusError, Row, check_text, check_turns, copy_one_file, text_lines
from seqforge.corpora.registry import CorpusCfg, CorpusFormat, one_file, register_format


@register_format("jsonl")
class Jsonl(CorpusFormat):
    name = "jsonl"

    def read(self, corpus: CorpusCfg, root: Path) -> Iterator[Row]:
        path = one_file(corpus, root)
        for number, line in enumerate(text_lines(path), 1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as err:
                raise CorpusError(f"{where}:{err.colno}: not valid JSON ({err.msg})") from None
            yield {"split": ALL, **_fields(obj, corpus, where)}

    def stage(self, sources: list[str], columns: dict, stage: Path) -> tuple[dict, list[str], str]:
        return copy_one_file(self.name, sources, columns, stage)


def _fields(obj: object, corpus: CorpusCfg, where: str) -> Row:
    def get(field: str) -> object:
        value = obj
        for part in field.split("."):
            if not isinstance(value, dict) or part not in value:
                raise CorpusError(f"{where}: no field {field!r}")
            value = value[part]
        return value

    if "turns" in corpus.columns:
        return {"turns": check_turns(get(str(corpus.columns["turns"])), where)}
    return {lang: check_text(get(str(corpus.columns[lang])), where) for lang in corpus.languages}
