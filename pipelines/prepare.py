"""Stage — raw parallel text -> cleaned (source, target) pairs per split + corpus statistics."""

import json
import sys

from seqforge import paths
from seqforge.config import ConfigError, load_config
from seqforge.data.prepare import CorpusError, prepare_translation

if __name__ == "__main__":
    try:
        cfg = load_config()
        splits, stats = prepare_translation(paths.raw_dir(cfg.translation.corpus), cfg.translation, cfg.prepare)
    except (ConfigError, CorpusError) as err:
        sys.exit(f"prepare: {err}")
    splits.save_to_disk(str(paths.prepared_dir("translation")))
    paths.METRICS.mkdir(exist_ok=True)
    (paths.METRICS / "data_translation.json").write_text(json.dumps(stats, indent=2) + "\n")
    for split, s in stats.items():
        dropped = {k: v for k, v in s.items() if k.startswith("dropped")}
        print(f"prepare: {split}: kept {s['kept']} of {s['raw']} pairs; dropped {dropped}")
