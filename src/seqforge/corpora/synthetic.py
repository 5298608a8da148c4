"""synthetic: sequences generated from a seed where distance is the variable — copy, reverse, and recall
(the token after a marker placed far back) — for the long-range study (`conf/study_long.yaml`).

The corpus file (`conf/corpora/<name>.yaml`) holds the generator's parameters under `synthetic:` and the
seed; `seqforge fetch` writes `data/<name>/{train,validation,test}.tsv` (source TAB target), which its
`files:` SHA-256 pins and `data.dvc` pins like any corpus, so the same parameters give the same bytes
everywhere. A source is the sub-task's word, then the symbols (`t0` … `t<vocab-1>`): `copy t3 t1 t4` →
`t3 t1 t4`, `reverse t3 t1 t4` → `t4 t1 t3`, `recall t3 mark t1 t4 t5` → `t1` (the marker sits in the first
quarter of the sequence, so what is recalled lies at least three quarters of its length back from the end).
Lengths (symbols) are drawn log-uniformly between `min_length` and `max_length` (each length bucket of a
doubling range gets about the same share), or uniformly.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from seqforge.config.base import Strict
from seqforge.corpora.base import SPLITS, CorpusError, Row, text_lines
from seqforge.corpora.registry import CorpusCfg, CorpusFormat, register_format

SubTask = Literal["copy", "reverse", "recall"]
MARKER = "mark"


class SyntheticCfg(Strict):
    """A synthetic corpus's parameters (`synthetic:` in its corpus file)."""

    tasks: list[SubTask] = Field(["copy", "reverse", "recall"], min_length=1)  # taken in turn, row by row
    min_length: int = Field(5, ge=2)  # symbols per source (the sub-task word and the marker not counted)
    max_length: int = Field(200, ge=2)  # the longest source, in symbols
    lengths: Literal["log_uniform", "uniform"] = "log_uniform"  # how source lengths are drawn
    vocab: int = Field(20, ge=2, le=100_000)  # distinct symbols
    splits: dict[Literal["train", "validation", "test"], int] = Field(  # rows per split
        default_factory=lambda: {"train": 20000, "validation": 500, "test": 1000}
    )

    @model_validator(mode="after")
    def _consistent(self) -> SyntheticCfg:
        if self.min_length > self.max_length:
            raise ValueError(f"min_length ({self.min_length}) is greater than max_length ({self.max_length})")
        if len(set(self.tasks)) != len(self.tasks):
            raise ValueError(f"tasks: each sub-task once (got {self.tasks})")
        missing = [s for s in SPLITS if self.splits.get(s, 0) < 1]
        if missing:
            raise ValueError(f"splits: {missing[0]} needs at least one row (got {self.splits})")
        return self

    def longest_source(self) -> int:
        """Source tokens of the longest row: sub-task word, symbols, the recall marker."""
        return self.max_length + 1 + ("recall" in self.tasks)


def _lengths(cfg: SyntheticCfg, rng: np.random.Generator, n: int) -> np.ndarray:
    if cfg.lengths == "uniform":
        return rng.integers(cfg.min_length, cfg.max_length + 1, n)
    logs = rng.uniform(math.log(cfg.min_length), math.log(cfg.max_length + 1), n)
    return np.minimum(np.exp(logs).astype(np.int64), cfg.max_length)


def _pair(task: str, symbols: list[str], rng: np.random.Generator) -> tuple[list[str], list[str]]:
    if task == "copy":
        return symbols, symbols
    if task == "reverse":
        return symbols, symbols[::-1]
    at = int(rng.integers(0, max(1, len(symbols) // 4)))  # recall: the marker in the first quarter
    return [*symbols[:at], MARKER, *symbols[at:]], [symbols[at]]


def generate(cfg: SyntheticCfg, seed: int) -> dict[str, list[tuple[str, str]]]:
    """(source, target) rows of every split; the same `cfg` and `seed` give the same rows (one generator per
    split, seeded by (seed, split), so a split's size never changes another split's rows)."""
    out = {}
    for index, split in enumerate(SPLITS):
        n = cfg.splits[split]
        rng = np.random.default_rng([seed, index])
        lengths = _lengths(cfg, rng, n)
        rows = []
        for i, length in enumerate(lengths.tolist()):
            task = cfg.tasks[i % len(cfg.tasks)]
            symbols = [f"t{s}" for s in rng.integers(0, cfg.vocab, length).tolist()]
            source, target = _pair(task, symbols, rng)
            rows.append((" ".join([task, *source]), " ".join(target)))
        out[split] = rows
    return out


@register_format("synthetic")
class Synthetic(CorpusFormat):
    name = "synthetic"
    params = SyntheticCfg

    def read(self, corpus: CorpusCfg, root: Path) -> Iterator[Row]:
        src, tgt = corpus.languages
        for split in SPLITS:
            path = root / f"{split}.tsv"
            for number, line in enumerate(text_lines(path), 1):
                fields = line.split("\t")
                if len(fields) != 2:
                    raise CorpusError(f"{path}:{number}: expected source TAB target, got {len(fields)} fields")
                yield {"split": split, src: fields[0], tgt: fields[1]}

    def generate(self, corpus: CorpusCfg, dest: Path) -> list[Path]:
        """Write the corpus's split files into `dest`; returns them."""
        written = []
        for split, rows in generate(SyntheticCfg(**corpus.synthetic), corpus.seed).items():
            path = dest / f"{split}.tsv"
            path.write_text("".join(f"{s}\t{t}\n" for s, t in rows), encoding="utf-8")
            written.append(path)
        return written

    def longest_source(self, corpus: CorpusCfg) -> int:
        return SyntheticCfg(**corpus.synthetic).longest_source()

    def stage(self, sources: list[str], columns: dict, stage: Path) -> tuple[dict, list[str], str]:
        raise CorpusError(
            "--format synthetic reads no files: write conf/corpora/<name>.yaml with `format: synthetic` "
            "and a `synthetic:` block (see conf/corpora/long_range.yaml); `seqforge fetch` generates it"
        )
