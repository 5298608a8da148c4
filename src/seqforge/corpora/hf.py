"""hf: a Hugging Face dataset (a `save_to_disk` folder, or a hub name[:config] in the local cache), exported by
`corpus add` to one `<split>.parquet` per split; COL is a column name."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from seqforge.corpora.base import ALL, SPLITS, CorpusError, Row
from seqforge.corpora.parquet import parquet_rows
from seqforge.corpora.registry import CorpusCfg, CorpusFormat, register_format


@register_format("hf")
class HuggingFace(CorpusFormat):
    name = "hf"

    def read(self, corpus: CorpusCfg, root: Path) -> Iterator[Row]:
        files = sorted(corpus.files)
        given = {Path(f).stem for f in files}
        for name in files:
            split = Path(name).stem if set(SPLITS) <= given else ALL
            yield from parquet_rows(root / name, corpus, split)

    def stage(self, sources: list[str], columns: dict, stage: Path) -> tuple[dict, list[str], str]:
        (name,) = sources
        return columns, [k for k in columns if k != "turns"], _export_hf(name, stage)


def _export_hf(source: str, stage: Path) -> str:
    """A Hugging Face dataset (local `save_to_disk` folder, or hub name[:config]) -> `<split>.parquet` files."""
    import datasets

    local = Path(source).expanduser()
    try:
        if local.exists():
            loaded = datasets.load_from_disk(str(local))
        else:
            name, _, config = source.partition(":")
            loaded = datasets.load_dataset(name, config or None)
    except FileNotFoundError as err:
        raise CorpusError(f"--source: {source}: not a dataset saved with save_to_disk ({err})") from None
    except (ConnectionError, OSError, ValueError, datasets.exceptions.DatasetNotFoundError) as err:
        offline = "HF_DATASETS_OFFLINE" in str(err) or "offline" in str(err).lower() or isinstance(err, ConnectionError)
        hint = (
            (
                " Offline, only datasets already in the local Hugging Face cache load; download it on a "
                "connected machine first, or pass a folder written with `save_to_disk`."
            )
            if offline
            else ""
        )
        raise CorpusError(
            f"--source: Hugging Face dataset {source!r} is not available: {str(err).splitlines()[0]}.{hint}"
        ) from None
    splits = loaded if isinstance(loaded, datasets.DatasetDict) else {"all": loaded}
    renamed = {"dev": "validation", "valid": "validation"}
    for split, data in splits.items():
        data.flatten().to_parquet(str(stage / f"{renamed.get(split, split)}.parquet"))
    return source if not local.exists() else str(local.resolve())
