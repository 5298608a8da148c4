"""Thin DVC stage entry points: `python -m pipelines.<stage> [experiment]`."""
