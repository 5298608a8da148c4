"""The `prepare` stage for any task: raw corpus -> (source, target) pairs on disk + statistics."""

from __future__ import annotations

import json

from datasets import DatasetDict

from seqforge import paths
from seqforge.config import load_config
from seqforge.data.dialogue import prepare_chatbot
from seqforge.data.prepare import prepare_translation

BUILDERS = {"translation": prepare_translation, "chatbot": prepare_chatbot}


def prepare_task(task: str) -> DatasetDict:
    """Build task `task`'s pairs into `artifacts/prepared/<task>`, stats into `metrics/data_<task>.json`.

    Outputs are written only after every split was built, so a bad corpus keeps the last good ones.
    """
    data_cfg = load_config().task(task).data
    splits, stats = BUILDERS[task](paths.raw_dir(data_cfg.corpus), data_cfg)
    splits.save_to_disk(str(paths.prepared_dir(task)))
    paths.METRICS.mkdir(exist_ok=True)
    (paths.METRICS / f"data_{task}.json").write_text(json.dumps(stats, indent=2) + "\n")
    for split, s in stats.items():
        dropped = {k: v for k, v in s.items() if k.startswith(("dropped", "malformed"))}
        print(f"prepare {task}: {split}: kept {s['kept']} pairs; {dropped}")
    return splits
