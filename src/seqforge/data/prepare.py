"""Raw parallel text -> cleaned (source, target) pairs as a Hugging Face `DatasetDict`."""

from __future__ import annotations

import gzip
import re
import unicodedata
from collections import Counter
from pathlib import Path

from datasets import Dataset, DatasetDict

from seqforge.config import TranslationData

MULTI30K_SPLITS = {"train": "train", "validation": "val", "test": "test_2016_flickr"}
_SPACES = re.compile(r"\s+")


class CorpusError(ValueError):
    """A corpus file is malformed or does not line up with its counterpart."""


def normalize(text: str) -> str:
    """Unicode NFC and whitespace clean-up (collapse runs, strip ends)."""
    return _SPACES.sub(" ", unicodedata.normalize("NFC", text)).strip()


def read_lines(path: Path) -> list[str]:
    """Lines of a (possibly gzipped) UTF-8 text file, without line terminators."""
    if not path.is_file():
        raise CorpusError(f"{path}: file not found (run `seqforge fetch` or `dvc pull`)")
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8", newline="\n") as fh:
            lines = fh.read().split("\n")
    except (UnicodeDecodeError, OSError, EOFError) as err:
        raise CorpusError(f"{path}: cannot read as UTF-8 text ({err})") from err
    return lines[:-1] if lines and lines[-1] == "" else lines


def clean_pairs(
    sources: list[str], targets: list[str], cfg: TranslationData
) -> tuple[list[dict[str, str]], Counter]:
    """Normalise pairs and drop empty, over-long and badly proportioned ones; count the drops."""
    kept, counts = [], Counter()
    for src, tgt in zip(sources, targets, strict=True):
        src, tgt = normalize(src), normalize(tgt)
        n_src, n_tgt = len(src.split()), len(tgt.split())
        if not n_src or not n_tgt:
            counts["dropped_empty"] += 1
        elif max(n_src, n_tgt) > cfg.max_tokens:
            counts["dropped_too_long"] += 1
        elif max(n_src, n_tgt) / min(n_src, n_tgt) > cfg.max_ratio:
            counts["dropped_ratio"] += 1
        else:
            kept.append({"source": src, "target": tgt})
    counts["kept"] = len(kept)
    return kept, counts


def read_parallel(src_path: Path, tgt_path: Path) -> tuple[list[str], list[str]]:
    """Both sides of a parallel corpus; files whose line counts differ are an error."""
    sources, targets = read_lines(src_path), read_lines(tgt_path)
    if len(sources) != len(targets):
        raise CorpusError(
            f"misaligned parallel files: {src_path} has {len(sources)} lines but "
            f"{tgt_path} has {len(targets)}"
        )
    return sources, targets


def prepare_translation(raw_dir: Path, cfg: TranslationData) -> tuple[DatasetDict, dict]:
    """Multi30k raw files -> `DatasetDict(train, validation, test)` and corpus statistics."""
    splits, stats = {}, {}
    for split, stem in MULTI30K_SPLITS.items():
        sources, targets = read_parallel(
            raw_dir / f"{stem}.{cfg.src_lang}.gz", raw_dir / f"{stem}.{cfg.tgt_lang}.gz"
        )
        pairs, counts = clean_pairs(sources, targets, cfg)
        if split == "train" and cfg.max_train_pairs is not None:
            counts["dropped_cap"] = max(0, len(pairs) - cfg.max_train_pairs)
            pairs = pairs[: cfg.max_train_pairs]
            counts["kept"] = len(pairs)
        if not pairs:
            raise CorpusError(f"{raw_dir}/{stem}.*: no usable pairs after cleaning ({dict(counts)})")
        splits[split] = Dataset.from_list(pairs)
        stats[split] = {
            "raw": len(sources),
            **counts,
            "src_tokens_mean": round(sum(len(p["source"].split()) for p in pairs) / len(pairs), 2),
            "tgt_tokens_mean": round(sum(len(p["target"].split()) for p in pairs) / len(pairs), 2),
        }
    return DatasetDict(splits), stats
