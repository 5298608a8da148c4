"""Module paths that moved, answered from their new homes, for the pickles that name them.

Versions registered before models from code (`tracking/model_code.py`) are pickled `Seq2SeqModel`s; those
registered by the flat layout (seqforge ≤ d00ba9a) name it `seqforge.registry.Seq2SeqModel`. Importing
`seqforge` installs a finder that answers such an old path with a module whose attributes are the new module's,
imported on first use: a process that has imported this seqforge loads those versions with today's class."""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
from types import ModuleType

MOVED = {"seqforge.registry": "seqforge.tracking.pyfunc"}  # old module -> the module that holds its names now


class MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds the old paths of `MOVED`; each loads as a module that reads its attributes from the new one."""

    def find_spec(self, name: str, path=None, target=None) -> importlib.machinery.ModuleSpec | None:
        return importlib.machinery.ModuleSpec(name, self) if name in MOVED else None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> None:
        return None  # the default module object

    def exec_module(self, module: ModuleType) -> None:
        new = MOVED[module.__name__]
        module.__getattr__ = lambda attr: getattr(importlib.import_module(new), attr)


def install() -> None:
    """Put the finder first on `sys.meta_path` (once)."""
    if not any(isinstance(finder, MovedModules) for finder in sys.meta_path):
        sys.meta_path.insert(0, MovedModules())
