"""parquet: one pair (or dialogue) per row; COL is a column name."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from seqforge.corpora.base import ALL, CorpusError, Row, check_text, check_turns, copy_one_file
from seqforge.corpora.registry import CorpusCfg, CorpusFormat, one_file, register_format


@register_format("parquet")
class Parquet(CorpusFormat):
    name = "parquet"

    def read(self, corpus: CorpusCfg, root: Path) -> Iterator[Row]:
        yield from parquet_rows(one_file(corpus, root), corpus, ALL)

    def stage(self, sources: list[str], columns: dict, stage: Path) -> tuple[dict, list[str], str]:
        return copy_one_file(self.name, sources, columns, stage)


def parquet_rows(path: Path, corpus: CorpusCfg, split: str) -> Iterator[Row]:
    """Rows of one Parquet file, every one in `split`."""
    import pyarrow.parquet as pq

    try:
        table = pq.ParquetFile(path)
    except (OSError, ValueError) as err:
        raise CorpusError(f"{path}: not a Parquet file ({err})") from None
    names = table.schema_arrow.names
    wanted = {key: str(col) for key, col in corpus.columns.items()}
    for key, col in wanted.items():
        if col not in names:
            raise CorpusError(f"{path}: no column {col!r} for {key!r} (columns: {', '.join(names)})")
    row_number = 0
    for batch in table.iter_batches(batch_size=10_000, columns=list(dict.fromkeys(wanted.values()))):
        data = batch.to_pydict()
        for i in range(batch.num_rows):
            row_number += 1
            where = f"{path}: row {row_number}"
            if "turns" in wanted:
                yield {"split": split, "turns": check_turns(data[wanted["turns"]][i], where)}
            else:
                yield {"split": split, **{lang: check_text(data[wanted[lang]][i], where) for lang in corpus.languages}}
