"""What every corpus format has: rows of one shape, errors naming file and line, and the helpers formats share
to read text files and to stage the files `seqforge corpus add` is given.

A reader yields rows of one shape whatever the format: ``{"split": ..., <lang>: text, ...}`` for a parallel
corpus, ``{"split": ..., "turns": [...]}`` for a dialogue corpus. ``split`` is ``train``/``validation``/``test``
where the corpus comes split, else ``all`` (prepare carves held-out sets). Every malformed input is a
:class:`CorpusError` naming the file and the line (and column) that is wrong.
"""

from __future__ import annotations

import gzip
import shutil
from collections.abc import Iterator
from pathlib import Path

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
