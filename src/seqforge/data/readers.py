"""Raw corpus files -> rows, one reader per format behind one interface.

A reader yields rows of one shape whatever the format: ``{"split": ..., <lang>: text, ...}`` for
a parallel corpus, ``{"split": ..., "turns": [...]}`` for a dialogue corpus. ``split`` is
``train``/``validation``/``test`` where the corpus comes split, else ``all`` (prepare carves
held-out sets). :func:`read_corpus` writes them in batches to a memory-mapped Arrow file, so
memory stays bounded whatever the corpus size. Every malformed input is a :class:`CorpusError` naming
the file and the line (and column) that is wrong.

TSV, the usual format of big parallel corpora, is parsed by Arrow's multi-threaded CSV reader; a
file it refuses (a row of another width, bad UTF-8) is read again line by line, which names the line.
"""

from __future__ import annotations

import csv
import gzip
import itertools
import json
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pyarrow as pa

from seqforge.config import CorpusCfg

ALL = "all"  # the split of rows in a corpus that comes unsplit
SPLITS = ("train", "validation", "test")
EOU = "__eou__"
MULTI30K_SPLITS = {"train": "train", "validation": "val", "test": "test_2016_flickr"}
DIALOGUE_FILES = {"train": "train.txt", "validation": "validation.txt", "test": "test.txt"}
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


def _one_file(corpus: CorpusCfg, root: Path) -> Path:
    return root / next(iter(corpus.files))


def _check_text(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise CorpusError(f"{where}: expected text, got {type(value).__name__} {value!r:.60}")
    return value


def _check_turns(value: object, where: str) -> list[str]:
    if not isinstance(value, list | tuple) or not all(isinstance(t, str) for t in value):
        raise CorpusError(f"{where}: `turns` must be a list of strings, got {value!r:.80}")
    return list(value)


def read_delimited(corpus: CorpusCfg, root: Path) -> Iterator[Row]:
    """tsv / csv: one pair per row (blank lines skipped); COL is a 0-based index or, with a header row,
    a column name."""
    path = _one_file(corpus, root)
    tsv = corpus.format == "tsv"
    rows = csv.reader(text_lines(path), delimiter="\t" if tsv else ",",
                      quoting=csv.QUOTE_NONE if tsv else csv.QUOTE_MINIMAL, strict=True)
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
                        raise CorpusError(f"{where}: column {col!r} for {key!r} not in the "
                                          f"{'header ' + str(row) if corpus.header else f'{width} columns'}")
                    index[key] = names.index(col)
                if corpus.header:
                    continue
            if len(row) != width:
                raise CorpusError(f"{where}: expected {width} columns (as on the first row), found {len(row)}")
            yield {"split": ALL, **{lang: row[index[lang]] for lang in corpus.languages}}
    except csv.Error as err:
        raise CorpusError(f"{path}:{rows.line_num}: {err}") from None


def read_jsonl(corpus: CorpusCfg, root: Path) -> Iterator[Row]:
    """jsonl: one JSON object per line; COL is a field name (`a.b` reaches into a nested object)."""
    path = _one_file(corpus, root)
    for number, line in enumerate(text_lines(path), 1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            raise CorpusError(f"{where}:{err.colno}: not valid JSON ({err.msg})") from None
        yield {"split": ALL, **_fields(obj, corpus, where)}


def _fields(obj: object, corpus: CorpusCfg, where: str) -> Row:
    def get(field: str) -> object:
        value = obj
        for part in field.split("."):
            if not isinstance(value, dict) or part not in value:
                raise CorpusError(f"{where}: no field {field!r}")
            value = value[part]
        return value

    if "turns" in corpus.columns:
        return {"turns": _check_turns(get(str(corpus.columns["turns"])), where)}
    return {lang: _check_text(get(str(corpus.columns[lang])), where) for lang in corpus.languages}


def _parquet_rows(path: Path, corpus: CorpusCfg, split: str) -> Iterator[Row]:
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
                yield {"split": split, "turns": _check_turns(data[wanted["turns"]][i], where)}
            else:
                yield {"split": split, **{lang: _check_text(data[wanted[lang]][i], where) for lang in corpus.languages}}


def read_parquet(corpus: CorpusCfg, root: Path) -> Iterator[Row]:
    """parquet: one pair per row; COL is a column name."""
    yield from _parquet_rows(_one_file(corpus, root), corpus, ALL)


def read_hf(corpus: CorpusCfg, root: Path) -> Iterator[Row]:
    """hf: the dataset as `corpus add` exported it, one `<split>.parquet` per split it has."""
    files = sorted(corpus.files)
    given = {Path(f).stem for f in files}
    for name in files:
        split = Path(name).stem if set(SPLITS) <= given else ALL
        yield from _parquet_rows(root / name, corpus, split)


def read_text_pair(corpus: CorpusCfg, root: Path) -> Iterator[Row]:
    """text_pair: two aligned plain-text files (optionally .gz), line i of one translating line i of the other."""
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


def read_multi30k(corpus: CorpusCfg, root: Path) -> Iterator[Row]:
    """multi30k: `{train,val,test_2016_flickr}.<lang>.gz`, aligned by line, one file per split and language."""
    for split, stem in MULTI30K_SPLITS.items():
        paths = {lang: root / f"{stem}.{lang}.gz" for lang in corpus.languages}
        sides = {lang: list(text_lines(path)) for lang, path in paths.items()}
        counts = {lang: len(lines) for lang, lines in sides.items()}
        if len(set(counts.values())) > 1:
            sizes = " but ".join(f"{paths[lang]} has {n} lines" for lang, n in counts.items())
            raise CorpusError(f"misaligned parallel files: {sizes}")
        for i in range(next(iter(counts.values()))):
            yield {"split": split, **{lang: sides[lang][i] for lang in corpus.languages}}


def read_dailydialog(corpus: CorpusCfg, root: Path) -> Iterator[Row]:
    """dailydialog: one dialogue per line, turns separated by `__eou__`; a line without one has no turns."""
    names = set(corpus.files)
    given = set(DIALOGUE_FILES.values()) <= names
    files = DIALOGUE_FILES.items() if given else [(ALL, sorted(names)[0])]
    for split, name in files:
        for line in text_lines(root / name):
            yield {"split": split, "turns": line.split(EOU) if EOU in line else []}


READERS: dict[str, Callable[[CorpusCfg, Path], Iterator[Row]]] = {
    "tsv": read_delimited, "csv": read_delimited, "jsonl": read_jsonl, "parquet": read_parquet,
    "text_pair": read_text_pair, "hf": read_hf, "multi30k": read_multi30k, "dailydialog": read_dailydialog,
}


def arrow_tsv(corpus: CorpusCfg, root: Path, block_bytes: int = 1 << 24) -> Iterator[pa.RecordBatch]:
    """tsv through Arrow's CSV reader, in blocks; raises `pa.ArrowException` (or `OSError`) where the
    file is not well-formed (then :func:`read_delimited` reads it again and names the line)."""
    import pyarrow.csv as pv

    path = _one_file(corpus, root)
    names = {lang: str(corpus.columns[lang]) if corpus.header else f"f{corpus.columns[lang]}"
             for lang in corpus.languages}
    wanted = list(dict.fromkeys(names.values()))
    reader = pv.open_csv(
        path,
        read_options=pv.ReadOptions(autogenerate_column_names=not corpus.header, block_size=block_bytes),
        parse_options=pv.ParseOptions(delimiter="\t", quote_char=False, escape_char=False, ignore_empty_lines=True),
        convert_options=pv.ConvertOptions(include_columns=wanted, column_types=dict.fromkeys(wanted, pa.string())),
    )
    for batch in reader:
        yield pa.RecordBatch.from_arrays([pa.array([ALL] * batch.num_rows, pa.string()),
                                          *(batch.column(names[lang]) for lang in corpus.languages)],
                                         names=["split", *corpus.languages])


FAST_READERS: dict[str, Callable[[CorpusCfg, Path], Iterator[pa.RecordBatch]]] = {"tsv": arrow_tsv}


def row_schema(corpus: CorpusCfg) -> pa.Schema:
    """The columns of a corpus's rows: `split` and one text column per language, or `turns`."""
    if corpus.dialogue:
        return pa.schema([("split", pa.string()), ("turns", pa.list_(pa.string()))])
    return pa.schema([("split", pa.string()), *((lang, pa.string()) for lang in corpus.languages)])


def write_arrow(path: Path, batches: Iterable[pa.RecordBatch], schema: pa.Schema) -> pa.Table:
    """Record batches -> an Arrow stream file at `path`, read back memory-mapped (memory holds one batch)."""
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_stream(sink, schema) as writer:
        for batch in batches:
            writer.write_batch(batch)
    return pa.ipc.open_stream(pa.memory_map(str(path))).read_all()


def _batches(rows: Iterator[Row], schema: pa.Schema, size: int) -> Iterator[pa.RecordBatch]:
    while chunk := list(itertools.islice(rows, size)):
        yield pa.RecordBatch.from_pylist(chunk, schema=schema)


def read_corpus(corpus: CorpusCfg, root: Path, cache_dir: Path, batch_rows: int = 10_000) -> pa.Table:
    """Every row of the corpus in `root` as a memory-mapped Arrow table (written in batches under
    `cache_dir`): memory holds one batch, whatever the corpus size."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    path, schema = cache_dir / f"{corpus.name}-rows.arrow", row_schema(corpus)
    if corpus.format in FAST_READERS:
        try:
            return write_arrow(path, FAST_READERS[corpus.format](corpus, root), schema)
        except (pa.ArrowException, OSError):
            pass  # read again line by line: that reader names the line that is wrong
    return write_arrow(path, _batches(READERS[corpus.format](corpus, root), schema, batch_rows), schema)


class ScratchDir:
    """A temporary folder for Arrow caches beside the outputs (same disk), removed on exit."""

    def __init__(self, parent: Path) -> None:
        parent.mkdir(parents=True, exist_ok=True)
        self.path = Path(tempfile.mkdtemp(prefix=".scratch-", dir=parent))

    def __enter__(self) -> Path:
        return self.path

    def __exit__(self, *exc: object) -> None:
        shutil.rmtree(self.path, ignore_errors=True)

