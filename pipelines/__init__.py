"""Thin DVC stage entry points: `python -m pipelines.<stage> <task|experiment>`."""

from __future__ import annotations

import sys
from collections.abc import Callable

from seqforge.config import ConfigError
from seqforge.data.readers import CorpusError
from seqforge.tracking import TrackingError


def run_stage(stage: str, fn: Callable[[str], object], what: str = "experiment") -> None:
    """Run `fn(<task or experiment>)` from the command line; known failures exit with one clear line."""
    if len(sys.argv) != 2:
        sys.exit(f"usage: python -m pipelines.{stage} <{what}>")
    try:
        fn(sys.argv[1])
    except (ConfigError, CorpusError, TrackingError, FileNotFoundError) as err:
        sys.exit(f"{stage}: {err}")
