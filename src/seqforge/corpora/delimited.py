"""tsv and csv: one pair per row (blank lines skipped); COL is a 0-based index or, with a header row, a column name.

TSV, the usual format of big parallel corpora, is parsed by Arrow's multi-threaded CSV reader; a file it refuses
(a row of another width, bad UTF-8) is read again line by line, which names the line.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa

from seqforge.corpora.base import ALL, CorpusError, Row, copy_one_file, text_lines
from seqforge.corpora.registry import CorpusCfg, CorpusFormat, one_file, register_format


class Delimited(CorpusFormat):
    """Rows of delimited text; `name` is the delimiter's format."""

    def read(self, corpus: CorpusCfg, root: Path) -> Iterator[Row]:
        path = one_file(corpus, root)
        tsv = corpus.format == "tsv"
        rows = csv.reader(
            text_lines(path),
            delimiter="\t" if tsv else ",",
            quoting=csv.QUOTE_NONE if tsv else csv.QUOTE_MINIMAL,
            strict=True,
        )
        width, index = None, {}
        try:
            for row in rows:
                where = f"{path}:{rows.line_num}"
                if not row:
                    continue
                if width is None:
                    width = len(row)
                    names = row if corpus.header else [str(i) for i in range(width)]
                    for key, col in corpus.columns.items():
                        col = str(col)
                        if col not in names:
                            raise CorpusError(
                                f"{where}: column {col!r} for {key!r} not in the "
                                f"{'header ' + str(row) if corpus.header else f'{width} columns'}"
                            )
                        index[key] = names.index(col)
                    if corpus.header:
                        continue
                if len(row) != width:
                    raise CorpusError(f"{where}: expected {width} columns (as on the first row), found {len(row)}")
                yield {"split": ALL, **{lang: row[index[lang]] for lang in corpus.languages}}
        except csv.Error as err:
            raise CorpusError(f"{path}:{rows.line_num}: {err}") from None

    def stage(self, sources: list[str], columns: dict, stage: Path) -> tuple[dict, list[str], str]:
        return copy_one_file(self.name, sources, columns, stage)


@register_format("tsv")
class Tsv(Delimited):
    name = "tsv"

    def batches(self, corpus: CorpusCfg, root: Path) -> Iterator[pa.RecordBatch]:
        return arrow_tsv(corpus, root)


@register_format("csv")
class Csv(Delimited):
    name = "csv"


def arrow_tsv(corpus: CorpusCfg, root: Path, block_bytes: int = 1 << 24) -> Iterator[pa.RecordBatch]:
    """tsv through Arrow's CSV reader, in blocks; raises `pa.ArrowException` (or `OSError`) where the
    file is not well-formed (then :func:`read_delimited` reads it again and names the line)."""
    import pyarrow.csv as pv

    path = one_file(corpus, root)
    names = {
        lang: str(corpus.columns[lang]) if corpus.header else f"f{corpus.columns[lang]}" for lang in corpus.languages
    }
    wanted = list(dict.fromkeys(names.values()))
    reader = pv.open_csv(
        path,
        read_options=pv.ReadOptions(autogenerate_column_names=not corpus.header, block_size=block_bytes),
        parse_options=pv.ParseOptions(delimiter="\t", quote_char=False, escape_char=False, ignore_empty_lines=True),
        convert_options=pv.ConvertOptions(include_columns=wanted, column_types=dict.fromkeys(wanted, pa.string())),
    )
    for batch in reader:
        yield pa.RecordBatch.from_arrays(
            [pa.array([ALL] * batch.num_rows, pa.string()), *(batch.column(names[lang]) for lang in corpus.languages)],
            names=["split", *corpus.languages],
        )
