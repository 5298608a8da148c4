"""Every generated block by name: what fills `<!-- gen:NAME -->` in a page."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from docs.gen import benchmarks, results, studies, tables
from docs.gen.cli_ref import cli_reference
from docs.gen.config_ref import config_reference
from docs.gen.layers import layer_table

BLOCKS: dict[str, Callable[[], str]] = {
    "cli": cli_reference,
    "config": config_reference,
    "layers": layer_table,
    "headline": results.headline,
    "results-translation": results.translation_table,
    "results-chatbot": results.chatbot_table,
    "results-data": results.data_table,
    "recipe-rules": results.recipe_rules,
    "recipes": benchmarks.recipes,
    "peer-speed": benchmarks.peer_speed,
    "time-to-bleu": benchmarks.time_to_bleu,
    "inference": benchmarks.inference,
    "serving": benchmarks.serving,
    "soak": benchmarks.soak,
    "chaos": benchmarks.chaos,
    "precision": benchmarks.precision,
    "placement": benchmarks.placement,
    "gpu-check": benchmarks.gpu_check,
    "study": partial(studies.report, "study"),
    "study-long": partial(studies.report, "study_long"),
    "bad-inputs": tables.bad_inputs,
    "faults": tables.faults,
}


def render(name: str) -> str:
    if name not in BLOCKS:
        raise KeyError(f"no generated block {name!r} (blocks: {', '.join(BLOCKS)})")
    return BLOCKS[name]()
