"""multi30k: `{train,val,test_2016_flickr}.<lang>.gz`, aligned by line, one file per split and language."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

from seqforge.corpora.base import CorpusError, Row, local_sources, text_lines
from seqforge.corpora.registry import CorpusCfg, CorpusFormat, register_format

MULTI30K_SPLITS = {"train": "train", "validation": "val", "test": "test_2016_flickr"}


@register_format("multi30k")
class Multi30k(CorpusFormat):
    name = "multi30k"

    def read(self, corpus: CorpusCfg, root: Path) -> Iterator[Row]:
        for split, stem in MULTI30K_SPLITS.items():
            paths = {lang: root / f"{stem}.{lang}.gz" for lang in corpus.languages}
            sides = {lang: list(text_lines(path)) for lang, path in paths.items()}
            counts = {lang: len(lines) for lang, lines in sides.items()}
            if len(set(counts.values())) > 1:
                sizes = " but ".join(f"{paths[lang]} has {n} lines" for lang, n in counts.items())
                raise CorpusError(f"misaligned parallel files: {sizes}")
            for i in range(next(iter(counts.values()))):
                yield {"split": split, **{lang: sides[lang][i] for lang in corpus.languages}}

    def stage(self, sources: list[str], columns: dict, stage: Path) -> tuple[dict, list[str], str]:
        (src,) = local_sources(self.name, sources, 1)
        found = sorted(p.name for p in src.glob("*.gz"))
        langs = sorted({n.split(".")[-2] for n in found if n.split(".")[0] in MULTI30K_SPLITS.values()})
        if not langs:
            raise CorpusError(f"--source: {src}: no {{train,val,test_2016_flickr}}.<lang>.gz files")
        for name in found:
            shutil.copyfile(src / name, stage / name)
        return {}, langs, str(src.resolve())
