"""What every corpus format has: rows of one shape, errors naming file and line, and the interface a format
implements (read a corpus; stage the files `seqforge corpus add` is given).

A reader yields rows of one shape whatever the format: ``{"split": ..., <lang>: text, ...}`` for a parallel
corpus, ``{"split": ..., "turns": [...]}`` for a dialogue corpus. ``split`` is ``train``/``validation``/``test``
where the corpus comes split, else ``all`` (prepare carves held-out sets). Every malformed input is a
:class:`CorpusError` naming the file and the line (and column) that is wrong.
"""

from __future__ import annotations

import gzip
import shutil
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import pyarrow as pa
from pydantic import BaseModel

from seqforge.data.text import normalize

if TYPE_CHECKING:
    from seqforge.corpora.registry import CorpusCfg

ALL = "all"  # the split of rows in a corpus that comes unsplit


SPLITS = ("train", "validation", "test")


Row = dict[str, object]


class CorpusError(ValueError):
    """A corpus file is malformed or does not line up with its counterpart."""


def text_lines(path: Path) -> Iterator[str]:
    """Lines of a UTF-8 text file (gzip when it ends in .gz) without terminators or a leading byte-order
    mark; bad bytes name line:column."""
    if not path.is_file():
        raise CorpusError(f"{path}: file not found (run `seqforge fetch` or `dvc pull`)")
    opener = gzip.open if path.suffix == ".gz" else open
    empty = True
    try:
        with opener(path, "rb") as fh:
            for number, raw in enumerate(fh, 1):
                empty = False
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as err:
                    raise CorpusError(f"{path}:{number}:{err.start + 1}: invalid UTF-8 ({err.reason})") from None
                yield line.rstrip("\n").removesuffix("\r").removeprefix("\ufeff" if number == 1 else "")
    except (OSError, EOFError) as err:
        raise CorpusError(f"{path}: cannot read ({err})") from err
    if empty:
        raise CorpusError(f"{path}: empty file")


def one_file(corpus: CorpusCfg, root: Path) -> Path:
    return root / next(iter(corpus.files))


def check_text(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise CorpusError(f"{where}: expected text, got {type(value).__name__} {value!r:.60}")
    return value


def check_turns(value: object, where: str) -> list[str]:
    if not isinstance(value, list | tuple) or not all(isinstance(t, str) for t in value):
        raise CorpusError(f"{where}: `turns` must be a list of strings, got {value!r:.80}")
    return list(value)


def local_sources(fmt: str, sources: list[str], count: int) -> list[Path]:
    """`corpus add --source` values of a format that reads `count` local files or folders, checked."""
    if len(sources) != count:
        raise CorpusError(f"--source: format {fmt} takes {count} source{'s' * (count > 1)}, got {len(sources)}")
    found = [Path(s).expanduser() for s in sources]
    for path in found:
        if not path.exists():
            raise CorpusError(f"--source: {path}: no such file or folder")
    return found


def copy_one_file(fmt: str, sources: list[str], columns: dict, stage: Path) -> tuple[dict, list[str], str]:
    """`corpus add` of a one-file format whose columns name each language (or `turns`)."""
    (src,) = local_sources(fmt, sources, 1)
    if not src.is_file():
        raise CorpusError(f"--source: {src}: not a file")
    if not columns:
        raise CorpusError(f"--columns: format {fmt} needs LANG=COL,... (e.g. ko=0,en=1)")
    shutil.copyfile(src, stage / src.name)
    return columns, [k for k in columns if k != "turns"], str(src.resolve())


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

    def turn_cleaner(self, form: str) -> Callable[[str], str]:
        """How dialogue turns are cleaned, in prepare and at inference (Unicode normalisation unless the
        format knows better)."""
        return partial(normalize, form=form)
