"""Corpus formats by name (`format:` in `conf/corpora/<name>.yaml`): `@register_format("name")` on a
`CorpusFormat` subclass; the corpus schema, its loader, and reading any corpus into a memory-mapped Arrow table.

Adding a format is one module that registers itself; a corpus of it is one `conf/corpora/<name>.yaml`
(`seqforge corpus add` writes it).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal, TypeVar

import pyarrow as pa
from pydantic import ValidationError, ValidationInfo, field_validator

from seqforge.config.base import (
    CONF_DIR,
    Lang,
    Name,
    Strict,
    group_file,
    group_names,
    read_yaml,
    validate,
)
from seqforge.corpora.base import CorpusFormat, Row
from seqforge.data.arrow_files import write_arrow

FORMATS: dict[str, CorpusFormat] = {}
F = TypeVar("F", bound=type[CorpusFormat])


def register_format(name: str) -> Callable[[F], F]:
    """Class decorator: register one instance of `cls` as corpus format `name`."""

    def add(cls: F) -> F:
        if cls.name != name:
            raise TypeError(f"{cls.__name__}.name must be {name!r} to register format {name!r}")
        if name in FORMATS and type(FORMATS[name]) is not cls:
            raise TypeError(f"corpus format {name!r} is registered already, by {type(FORMATS[name]).__module__}")
        FORMATS[name] = cls()
        return cls

    return add


def corpus_format(name: str) -> CorpusFormat:
    """The registered format `name`."""
    return FORMATS[name]

class ArchiveCfg(Strict):
    url: str
    sha256: str
    members: dict[str, str]  # file in data/<corpus>: path inside the archive (`!` enters a nested zip)


class CorpusCfg(Strict):
    """A raw corpus in `data/<name>/`: its format, files (SHA-256 pinned) and how to read them."""

    name: Name
    format: str  # a registered format (corpora.registry)
    files: dict[str, str] = {}  # file under data/<name>/ -> SHA-256 (required but for generated formats, whose
    # `seqforge fetch` prints them)
    languages: list[Lang] = []  # parallel corpora: the languages it holds (empty: a dialogue corpus)
    columns: dict[str, str | int] = {}  # language (or `turns`) -> column index, header name, field or file
    header: bool = False  # tsv/csv: the first row names the columns
    split: dict[Literal["validation", "test"], int] = {}  # one-file corpora: held-out sizes (unique sources)
    seed: int = 0  # the carving's seed
    source: str | None = None  # where it came from: a local path or a Hugging Face dataset (information)
    url: str | None = None  # built-in corpora: official address of each file (`{file}`)
    archive: ArchiveCfg | None = None  # built-in corpora: official archive holding the files
    hf: dict[str, Any] = {}  # hf: config name, splits read
    synthetic: dict[str, Any] = {}  # synthetic: the generator's parameters (corpora.synthetic.SyntheticCfg)

    @field_validator("format")
    @classmethod
    def _registered(cls, fmt: str) -> str:
        if fmt not in FORMATS:
            raise ValueError(f"unknown format {fmt!r} (formats: {', '.join(FORMATS)})")
        return fmt

    @field_validator("files")
    @classmethod
    def _listed(cls, files: dict[str, str], info: ValidationInfo) -> dict[str, str]:
        fmt = info.data.get("format")
        if not files and fmt in FORMATS and FORMATS[fmt].params is None:
            raise ValueError(f"a corpus of format {fmt} lists its files (name: SHA-256)")
        return files

    @field_validator("synthetic")
    @classmethod
    def _generator_params(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        params = FORMATS[info.data["format"]].params if info.data.get("format") in FORMATS else None
        if params is None:
            if value:
                raise ValueError("only a corpus of format synthetic takes generator parameters")
            return value
        try:
            return params.model_validate(value).model_dump()
        except ValidationError as err:
            first = err.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise ValueError(f"{where + ': ' if where else ''}{first['msg'].removeprefix('Value error, ')}") from None

    @property
    def dialogue(self) -> bool:
        """Rows are dialogues (`turns`), not sentence pairs."""
        return FORMATS[self.format].dialogue or "turns" in self.columns


def load_corpus(name: str, conf_dir: Path = CONF_DIR) -> CorpusCfg:
    """`conf/corpora/<name>.yaml`: format, pinned files and how to read them."""
    path = group_file(conf_dir, "corpora", name, "corpus")
    return validate(CorpusCfg, {"name": name, **read_yaml(path)}, str(path))


def longest_source(corpus: CorpusCfg) -> int | None:
    """Tokens of the corpus's longest source where its format knows them before tokenizing (generated
    corpora: one token per symbol), else None."""
    return FORMATS[corpus.format].longest_source(corpus)


def corpus_names(conf_dir: Path = CONF_DIR) -> list[str]:
    """The corpora `conf/corpora/` records."""
    return group_names(conf_dir / "corpora")


def row_schema(corpus: CorpusCfg) -> pa.Schema:
    """The columns of a corpus's rows: `split` and one text column per language, or `turns`."""
    if corpus.dialogue:
        return pa.schema([("split", pa.string()), ("turns", pa.list_(pa.string()))])
    return pa.schema([("split", pa.string()), *((lang, pa.string()) for lang in corpus.languages)])


def _batches(rows: Iterator[Row], schema: pa.Schema, size: int) -> Iterator[pa.RecordBatch]:
    while chunk := list(itertools.islice(rows, size)):
        yield pa.RecordBatch.from_pylist(chunk, schema=schema)


def read_corpus(corpus: CorpusCfg, root: Path, cache_dir: Path, batch_rows: int = 10_000) -> pa.Table:
    """Every row of the corpus in `root` as a memory-mapped Arrow table (written in batches under
    `cache_dir`): memory holds one batch, whatever the corpus size."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    path, schema = cache_dir / f"{corpus.name}-rows.arrow", row_schema(corpus)
    fmt = corpus_format(corpus.format)
    if (fast := fmt.batches(corpus, root)) is not None:
        try:
            return write_arrow(path, fast, schema)
        except (pa.ArrowException, OSError):
            pass  # read again line by line: that reader names the line that is wrong
    return write_arrow(path, _batches(fmt.read(corpus, root), schema, batch_rows), schema)
