"""Stage — beam-search the test split, write metrics/<name>.json."""

import sys

from seqforge.config import ConfigError
from seqforge.evaluate import evaluate_experiment

if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(f"usage: python -m pipelines.evaluate <experiment>")
    try:
        evaluate_experiment(sys.argv[1])
    except (ConfigError, FileNotFoundError) as err:
        sys.exit(f"evaluate: {err}")
