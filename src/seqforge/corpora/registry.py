"""Corpus formats by name (`format:` in `conf/corpora/<name>.yaml`): the interface a format implements,
`@register_format("name")` on a `CorpusFormat` subclass, and the corpus schema and its loader (which check a
corpus against its registered format).

Adding a format is one module that registers itself; a corpus of it is one `conf/corpora/<name>.yaml`
(`seqforge corpus add` writes it).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

import pyarrow as pa
from pydantic import BaseModel, ValidationError, ValidationInfo, field_validator

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
from seqforge.corpora.base import Row


class CorpusFormat(ABC):
    """How one format's files become rows, and how `seqforge corpus add` takes them in."""

    name: ClassVar[str]
    dialogue: ClassVar[bool] = False  # every corpus of the format holds dialogues (else: when columns name `turns`)
    params: ClassVar[type[BaseModel] | None] = None  # a generated format's parameters (its corpus files'
    # `<format>:` block); `seqforge fetch` then writes the files with `generate` instead of downloading them

    @abstractmethod
    def read(self, corpus: CorpusCfg, root: Path) -> Iterator[Row]:
        """Every row of the corpus whose files are in `root`."""

    def batches(self, corpus: CorpusCfg, root: Path) -> Iterator[pa.RecordBatch] | None:
        """A faster columnar reader, where the format has one (None: use :meth:`read`); it raises
        `pa.ArrowException` or `OSError` where the file is not well-formed, and :meth:`read` names the line."""
        return None

    def generate(self, corpus: CorpusCfg, dest: Path) -> list[Path]:
        """A generated format's files for `corpus`, written into `dest` (formats with `params` implement it)."""
        raise NotImplementedError(f"format {self.name} reads files; it generates none")

    def longest_source(self, corpus: CorpusCfg) -> int | None:
        """Tokens of the longest source, where the format knows them before tokenizing (None: it does not)."""
        return None

    @abstractmethod
    def stage(self, sources: list[str], columns: dict, stage: Path) -> tuple[dict, list[str], str]:
        """`corpus add`: copy (or export) `sources` into `stage`; returns the columns to record, the
        languages, and where the data came from. A `CorpusError` names the option that is wrong."""

    def detokenize(self, turn: str) -> str:
        """A dialogue turn (normalised) as naturally written text, where the format's text comes tokenized
        (the chatbot kind normalises again after); unchanged unless the format knows better."""
        return turn


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
    url: str  # the archive's official address
    sha256: str  # its SHA-256, checked before anything is extracted
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


def one_file(corpus: CorpusCfg, root: Path) -> Path:
    """The file of a one-file corpus in `root`."""
    return root / next(iter(corpus.files))


def longest_source(corpus: CorpusCfg) -> int | None:
    """Tokens of the corpus's longest source where its format knows them before tokenizing (generated
    corpora: one token per symbol), else None."""
    return FORMATS[corpus.format].longest_source(corpus)


def corpus_names(conf_dir: Path = CONF_DIR) -> list[str]:
    """The corpora `conf/corpora/` records."""
    return group_names(conf_dir / "corpora")
