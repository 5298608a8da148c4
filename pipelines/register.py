"""Stage — log the model as an MLflow pyfunc and register it."""

import sys

from seqforge.config import ConfigError
from seqforge.registry import register_experiment

if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(f"usage: python -m pipelines.register <experiment>")
    try:
        register_experiment(sys.argv[1])
    except (ConfigError, FileNotFoundError) as err:
        sys.exit(f"register: {err}")
