"""Learning-rate schedules, as the factor of each update."""

from __future__ import annotations

import math
from collections.abc import Callable


def step_schedule(kind: str, warmup_steps: int, total_steps: int | Callable[[], int]) -> Callable[[int], float]:
    """The learning-rate factor of update `step`: linear warm-up, then inverse-sqrt decay, or (`linear`)
    a linear decay that reaches zero at update `total_steps`, the run's budget (a callable: read at each
    step, for a run that re-plans, `seqforge.training.worker.budget_keeper`)."""
    warmup = max(warmup_steps, 1)
    if kind == "inverse_sqrt":
        return lambda step: min((step + 1) / warmup, math.sqrt(warmup / (step + 1)))
    planned = total_steps if callable(total_steps) else lambda: total_steps

    def linear(step: int) -> float:
        total = max(planned(), warmup + 1)
        return min((step + 1) / warmup, max(total - step, 0) / (total - warmup))

    return linear
