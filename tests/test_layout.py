"""The code's shape: one declared layer order that every import follows, no import circles, modules that
import alone, first-party imports in module headers, no module over 350 lines, and every DVC stage
depending on every source file its entry point imports (so `dvc repro` can never call a model current that
old code built)."""

from __future__ import annotations

import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest

from imports import (
    ROOT,
    SRC,
    _parsed,
    graph,
    heavy_packages,
    imports,
    module_file,
    module_name,
    package_modules,
)
from imports import cycles as import_cycles
from stage_deps import DVC_FILES, missing_deps, rewritten

MAX_LINES = 350

# The layers of `seqforge`, bottom first. A module imports from its own package and from lower layers,
# never from a higher one or from another package of its own layer; `TYPE_CHECKING` imports count too.
LAYERS = (
    "core",  # standard library only: paths, durations, plugin discovery, moved module names
    "config",  # conf/: the strict base, shared sections, profiles, the pipeline index
    "corpora",  # raw corpus files of every format -> rows
    "data",  # rows -> pairs on disk -> subword ids -> batches
    "models tasks",  # model families; task kinds (pairs, metrics, requests)
    "experiments",  # an experiment: task + model family + optimiser + training; recipes sized to the data
    "inference",  # search, predictors (PyTorch, CTranslate2), a model measured on a split
    "tracking",  # MLflow: runs, the metric outbox, the pyfunc, model versions
    "training.worker training.controller",  # in each Ray Train worker; in Ray Train's controller
    "training.budget",  # before training, in the driver: the plan and this machine's rate
    "training",  # the driver: Ray Train runs, the weights exported, what a run records
    "export research serving",  # exported versions; sweeps and studies; Ray Serve
    "catalog stack",  # bring your own data; the team stack
    "stages",  # the pipeline's stages, called by pipelines/ (DVC) and the tests
    "cli",  # the `seqforge` command
)
LEVEL = {package: level for level, names in enumerate(LAYERS) for package in names.split()}

# Importing these costs a command or a Ray process start noticeably (seconds measured on 2 cores: torch 1.6,
# lightning 4.5, ray.train 1.0, mlflow 1.4, datasets 0.9, matplotlib 0.4, pandas 0.35) or loads a native
# library that may be missing (ctranslate2). Only they justify a first-party import inside a function.
HEAVY = frozenset({"torch", "lightning", "ray", "mlflow", "datasets", "matplotlib", "pandas", "ctranslate2"})
LIGHT_PATHS = {  # imports that must stay light, and what they may not load
    "seqforge.cli": HEAVY,  # `seqforge --help` and typos answer at once
    "seqforge.training.controller.progress": {"torch", "lightning", "mlflow"},  # Ray Train's controller imports
    "seqforge.training.controller.checkpoint_queue": {"torch", "lightning", "mlflow"},  # each callback (~11 s)
    # a driver (train stage, Tune trial) hands Ray the worker loop by reference (`training.worker.entry`): Lightning
    # loads in the workers only (4.5 s of a smoke-size train stage)
    "seqforge.stages.train": {"lightning"},
    "seqforge.research.tune": {"lightning"},
}


def seqforge_modules() -> list[str]:
    return package_modules("seqforge")


def layer(module: str) -> str:
    """The layer entry of a `seqforge` module: the longest package prefix `LAYERS` names."""
    parts = module.split(".")[1:]
    for size in range(len(parts), 0, -1):
        if (prefix := ".".join(parts[:size])) in LEVEL:
            return prefix
    return "core"  # `seqforge` itself: its `__init__` stands on the ground floor


def upward(modules: list[str]) -> list[str]:
    """Imports (of any kind) that reach a higher layer or another package of the same layer."""
    found = []
    for module in modules:
        for imp in imports(module):
            if not imp.target.startswith("seqforge."):
                continue
            here, there = layer(module), layer(imp.target)
            if LEVEL[there] > LEVEL[here] or (LEVEL[there] == LEVEL[here] and there != here):
                found.append(
                    f"{module_file(module).relative_to(ROOT)}:{imp.line}: {imp.where}-level import of "
                    f"{imp.target} ({here} may not import {there})"
                )
    return found


def test_the_layer_table_covers_every_package() -> None:
    packages = {".".join(m.split(".")[1:]) for m in seqforge_modules() if module_file(m).name == "__init__.py"}
    assert sorted(p for p in packages - {""} if layer(f"seqforge.{p}") == "core" and p != "core") == []


def test_no_import_goes_up_the_layers() -> None:
    assert upward(seqforge_modules()) == []


def test_no_import_circles() -> None:
    """No two modules need each other, at run time or for types, directly or through a package's `__init__`."""
    assert import_cycles(graph(seqforge_modules())) == []


@contextmanager
def planted(files: dict[str, str]):
    """Modules written into `src/seqforge` for one check (`{"data/x.py": source}`), removed after it."""
    paths = [SRC / "seqforge" / name for name in files]
    try:
        for path, text in zip(paths, files.values(), strict=True):
            path.write_text(text)
        _parsed.cache_clear()
        yield [module_name(p) for p in paths]
    finally:
        for path in paths:
            path.unlink(missing_ok=True)
        _parsed.cache_clear()


def test_the_checks_catch_planted_faults() -> None:
    """An upward import under TYPE_CHECKING, a type-level circle, the run-time circle through a registry
    package's `__init__` that `data.dialogue` once had, and a first-party import hidden in a function."""
    with planted(
        {
            "config/planted_up.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
            "    from seqforge.cli.app import app\n"
        }
    ) as (module,):
        assert upward([module]) == [
            "src/seqforge/config/planted_up.py:3: type-level import of seqforge.cli.app (config may not import cli)"
        ]
    with planted(
        {
            "data/planted_a.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
            "    from seqforge.data.planted_b import B\nA = 1\n",
            "data/planted_b.py": "from seqforge.data.planted_a import A\nB = A\n",
        }
    ) as modules:
        assert import_cycles(graph(seqforge_modules())) == [sorted(modules)]
    with planted(
        {
            "data/planted_turns.py": "from seqforge.corpora.base import CorpusError\n",
            "corpora/planted_format.py": "from seqforge.data.planted_turns import CorpusError\n",
        }
    ):
        assert import_cycles(graph(seqforge_modules())) == [
            ["seqforge.corpora", "seqforge.corpora.planted_format", "seqforge.data.planted_turns"]
        ]
    with planted({"data/planted_lazy.py": "def f():\n    from seqforge.data.text import normalize\n"}) as (module,):
        assert hidden_imports([module]) == ["src/seqforge/data/planted_lazy.py:2: seqforge.data.text"]


def hidden_imports(modules: list[str]) -> list[str]:
    """First-party imports inside functions that keep no heavy package off the importing module's path."""
    hidden = []
    for module in modules:
        own = heavy_packages(module, HEAVY)
        for imp in imports(module):
            if (
                imp.where == "function"
                and imp.target.startswith("seqforge.")
                and not heavy_packages(imp.target, HEAVY) - own
            ):
                hidden.append(f"{module_file(module).relative_to(ROOT)}:{imp.line}: {imp.target}")
    return hidden


def test_first_party_imports_sit_in_module_headers() -> None:
    """A first-party import inside a function is allowed only where it keeps a heavy package (`HEAVY`) off the
    importing module's path (which the light paths, `LIGHT_PATHS`, rely on)."""
    assert hidden_imports(seqforge_modules()) == []


@pytest.mark.parametrize("entry", sorted(LIGHT_PATHS))
def test_light_import_paths_stay_light(entry: str) -> None:
    """Read from the source, then confirmed in a fresh interpreter."""
    assert heavy_packages(entry, frozenset(LIGHT_PATHS[entry])) == set()
    code = f"import sys, {entry}; print(sorted(set({sorted(LIGHT_PATHS[entry])}) & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out


IMPORT_ALONE = """
import os, sys
sys.path.insert(0, {src!r})
for heavy in {preload!r}:  # third-party packages: loaded once here, shared by every fork
    __import__(heavy)
failed = []
for name in {modules!r}:
    pid = os.fork()
    if pid == 0:  # a child that has imported nothing of seqforge: the module must import alone
        try:
            __import__(name)
        except BaseException as err:
            print(f"{{name}}: {{type(err).__name__}}: {{err}}", flush=True)
            os._exit(1)
        os._exit(0)
    if os.waitpid(pid, 0)[1]:
        failed.append(name)
print("FAILED", failed)
"""


def test_every_module_imports_alone() -> None:
    """Each module of seqforge, imported first in an interpreter that holds no seqforge module, imports (a
    circle through a package's `__init__` fails here with 'partially initialized module'). One interpreter
    loads the third-party packages, and each module is imported in a fork of it."""
    modules = [m for m in seqforge_modules() if m != "seqforge.cli.__main__"]
    preload = [
        "torch",
        "lightning.pytorch",
        "ray.train",
        "ray.tune",
        "mlflow",
        "datasets",
        "pandas",
        "matplotlib",
        "sacrebleu",
        "tokenizers",
        "typer",
        "rich",
        "pydantic",
    ]
    code = IMPORT_ALONE.format(src=str(SRC), preload=preload, modules=modules)
    env = {**os.environ, "MPLBACKEND": "Agg"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip().splitlines()[-1] == "FAILED []", (
        proc.stdout + proc.stderr[-3000:]
    )


@pytest.mark.parametrize("folder", ["src", "bench"])
def test_no_module_over_the_line_limit(folder: str) -> None:
    long = {
        str(p.relative_to(ROOT)): n
        for p in (ROOT / folder).rglob("*.py")
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}


# --- DVC stages depend on the code they run


@pytest.mark.parametrize("dvc_file", DVC_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_stage_depends_on_the_code_it_runs(dvc_file: Path) -> None:
    assert missing_deps(dvc_file) == {}


@pytest.mark.parametrize("dvc_file", DVC_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_stage_deps_are_the_generated_ones(dvc_file: Path) -> None:
    """No stage depends on code it does not run (a change there would rerun it for nothing): the source deps
    are what `make deps` writes."""
    assert dvc_file.read_text() == rewritten(dvc_file), "stale source deps: run `make deps`"


def test_a_planted_miss_is_caught(tmp_path: Path) -> None:
    text = (ROOT / "dvc.yaml").read_text()
    assert "        - src/seqforge/training\n" in text
    planted = ROOT / ".planted-dvc.yaml"
    try:
        planted.write_text(text.replace("        - src/seqforge/training\n", "", 1))
        missing = missing_deps(planted)
    finally:
        planted.unlink()
    assert "src/seqforge/training/averaging.py" in missing["train"]
