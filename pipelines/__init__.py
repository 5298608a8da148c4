"""Thin DVC stage entry points: `python -m pipelines.<stage> [experiment]`."""

from __future__ import annotations

import sys
from collections.abc import Callable

from seqforge.config import ConfigError


def run_experiment_stage(stage: str, fn: Callable[[str], object]) -> None:
    """Run `fn(<experiment>)` from the command line; known failures exit with one clear line."""
    if len(sys.argv) != 2:
        sys.exit(f"usage: python -m pipelines.{stage} <experiment>")
    try:
        fn(sys.argv[1])
    except (ConfigError, FileNotFoundError) as err:
        sys.exit(f"{stage}: {err}")
