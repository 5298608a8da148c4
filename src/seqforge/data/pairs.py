"""The `prepare` stage for any task: raw corpus -> (source, target) pairs on disk + statistics."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
from datasets import Dataset

from seqforge import paths
from seqforge.config import load_corpus, load_task
from seqforge.data.readers import ALL, CorpusError, ScratchDir, read_corpus
from seqforge.tasks import task_kind


def num_proc() -> int:
    """Processes for `datasets.map` over big corpora (the cores this process may use)."""
    return max(1, min(len(os.sched_getaffinity(0)), 8))


def carve(rows: Dataset, key: str, sizes: dict[str, int], seed: int, where: str) -> dict[str, Dataset]:
    """Split rows of split `all` into train + held-out sets of `sizes[split]` distinct `key` values each.

    Rows sharing a key (the same source sentence, the same dialogue) always land in one split.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    column = rows.data.column(key)
    if isinstance(column.type, pa.ListType | pa.LargeListType):  # dialogues: key on the whole turn list
        column = pc.binary_join(column, "\x1f")
    unique = pc.unique(column)
    wanted = sum(sizes.values())
    if wanted >= len(unique):
        raise CorpusError(f"{where}: split: {' + '.join(f'{s}={n}' for s, n in sizes.items())} = {wanted} "
                          f"held-out items, but the corpus has only {len(unique)} distinct ones (train would be empty)")
    order = np.random.default_rng(seed).permutation(len(unique))
    out, start, held = {}, 0, np.zeros(len(rows), dtype=bool)
    for split, n in sizes.items():
        member = pc.is_in(column, value_set=unique.take(pa.array(order[start : start + n]))).to_numpy(zero_copy_only=False)
        out[split] = rows.select(np.flatnonzero(member))
        held |= member
        start += n
    out["train"] = rows.select(np.flatnonzero(~held))
    return out


def by_split(rows: Dataset, key: str, sizes: dict[str, int], seed: int, where: str) -> dict[str, Dataset]:
    """The corpus's own splits, or held-out sets carved from an unsplit corpus."""
    names = rows.unique("split")
    if names == [ALL]:
        if not sizes:
            raise CorpusError(f"{where}: the corpus comes in one piece: give held-out sizes "
                              "(`seqforge corpus add ... --split validation=N,test=N`)")
        return carve(rows, key, sizes, seed, where)
    split_of = np.asarray(rows.data.column("split").to_numpy(zero_copy_only=False))
    return {s: rows.select(np.flatnonzero(split_of == s)) for s in ("train", "validation", "test")}


def prepare_task(name: str) -> dict:
    """Build task `name`'s pairs into `artifacts/prepared/<task>`, stats into `metrics/data_<task>.json`.

    Outputs are replaced only after every split was built, so a bad corpus keeps the last good ones.
    """
    task = load_task(name)
    corpus = load_corpus(task.corpus)
    missing = [lang for lang in {task.src_lang, task.tgt_lang} if not corpus.dialogue and lang not in corpus.languages]
    if missing:
        raise CorpusError(f"conf/tasks/{name}.yaml: language {missing[0]!r} is not in corpus {corpus.name} "
                          f"(its languages: {', '.join(corpus.languages)})")
    out = paths.prepared_dir(name)
    with ScratchDir(paths.ARTIFACTS) as scratch:
        rows = read_corpus(corpus, paths.raw_dir(corpus.name), scratch)
        splits, stats = task_kind(task.kind).pairs(rows, task, corpus, num_proc())
        splits.save_to_disk(str(scratch / "prepared"))
        shutil.rmtree(out, ignore_errors=True)
        out.parent.mkdir(parents=True, exist_ok=True)
        (scratch / "prepared").rename(out)
    paths.METRICS.mkdir(exist_ok=True)
    (paths.METRICS / f"data_{name}.json").write_text(json.dumps(stats, indent=2) + "\n")
    for split, s in stats.items():
        dropped = {k: v for k, v in s.items() if k.startswith(("dropped", "malformed"))}
        print(f"prepare {name}: {split}: kept {s['kept']} pairs; {dropped}")
    return stats
