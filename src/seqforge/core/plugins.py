"""Registries fill themselves: a registry's package imports every module it holds, so a new model family,
task kind or corpus format is one module dropped into that package (and one conf file), no import to add."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable


def import_all(package: str, path: Iterable[str]) -> None:
    """Import every module of `package` (its `__path__` is `path`): each registers what it defines."""
    for module in pkgutil.iter_modules(path):
        importlib.import_module(f"{package}.{module.name}")
