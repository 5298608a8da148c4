"""A raw corpus read by its format into rows (`split` and a text column per language, or `turns`), as a
memory-mapped Arrow table written batch by batch: memory holds one batch, whatever the corpus size."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa

from seqforge.corpora.base import Row
from seqforge.corpora.registry import CorpusCfg, corpus_format
from seqforge.data.arrow_files import write_arrow


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
    `cache_dir`)."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    path, schema = cache_dir / f"{corpus.name}-rows.arrow", row_schema(corpus)
    fmt = corpus_format(corpus.format)
    if (fast := fmt.batches(corpus, root)) is not None:
        try:
            return write_arrow(path, fast, schema)
        except (pa.ArrowException, OSError):
            pass  # read again line by line: that reader names the line that is wrong
    return write_arrow(path, _batches(fmt.read(corpus, root), schema, batch_rows), schema)
