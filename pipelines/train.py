"""Stage — train one experiment on Ray Train, export models/<name>/."""

import sys

from seqforge.config import ConfigError
from seqforge.train import train_experiment

if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(f"usage: python -m pipelines.train <experiment>")
    try:
        train_experiment(sys.argv[1])
    except (ConfigError, FileNotFoundError) as err:
        sys.exit(f"train: {err}")
