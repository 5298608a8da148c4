"""DVC's entry points, one per stage: `pipelines/stage <stage> <task|experiment>` (what dvc.yaml runs) calls
`python -m pipelines.<stage>`, which reads its argument and calls the stage in `seqforge.stages` (or, for the
sweeps and studies, `seqforge.research`). Stage code lives there; here, only the command line: a known
failure exits with one clear line."""

from __future__ import annotations

import sys
from collections.abc import Callable

from seqforge.config.base import ConfigError
from seqforge.corpora.base import CorpusError
from seqforge.tracking.client import TrackingError


def run_stage(
    stage: str, fn: Callable[..., object], what: str | None = "experiment", default: str | None = None
) -> None:
    """Run `fn(<task or experiment>)` (`fn()` when `what` is None; `fn(default)` when it is not given) from the
    command line; known failures exit with one clear line."""
    args = sys.argv[1:] or ([default] if default else [])
    if len(args) != (what is not None):
        sys.exit(f"usage: python -m pipelines.{stage}" + (f" <{what}>" if what else ""))
    try:
        fn(*args)
    except (ConfigError, CorpusError, TrackingError, FileNotFoundError) as err:
        sys.exit(f"{stage}: {err}")
