"""Stage `prepare` of a task: its raw corpus -> (source, target) pairs on disk, and statistics.

Rows stay in memory-mapped Arrow files from reading to the saved splits (`data.splits`); the task's kind
turns rows into pairs. Outputs are replaced only after every split was built.
"""

from __future__ import annotations

import json
import shutil

from seqforge.core import paths
from seqforge.corpora.base import CorpusError
from seqforge.corpora.registry import load_corpus
from seqforge.data.arrow_files import ScratchDir
from seqforge.data.rows import read_corpus
from seqforge.tasks.registry import load_task, task_kind


def prepare_task(name: str) -> dict:
    """Build task `name`'s pairs into `artifacts/prepared/<task>`, stats into `metrics/data_<task>.json`.

    Outputs are replaced only after every split was built, so a bad corpus keeps the last good ones.
    """
    task = load_task(name)
    corpus = load_corpus(task.corpus)
    kind = task_kind(task.kind)
    try:
        kind.languages(corpus, task.src_lang, task.tgt_lang, keys=("src_lang", "tgt_lang"))
    except ValueError as err:
        raise CorpusError(f"conf/tasks/{name}.yaml: {err}") from None
    out = paths.prepared_dir(name)
    with ScratchDir(paths.ARTIFACTS) as scratch:
        rows = read_corpus(corpus, paths.raw_dir(corpus.name), scratch)
        splits, stats = kind.pairs(rows, task, corpus, scratch)
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
