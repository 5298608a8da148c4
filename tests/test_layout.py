"""The code's shape: no import circles, no module over 350 lines, every DVC stage depends on every
source file its entry point imports (so `dvc repro` can never call a model current that old code built), and
Ray Train's callbacks import nothing heavy."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
MAX_LINES = 350


def _module_file(name: str) -> Path | None:
    """The file of a first-party module (`seqforge.x.y` or `pipelines.x`), or None."""
    base = SRC if name.split(".")[0] == "seqforge" else ROOT if name.split(".")[0] == "pipelines" else None
    if base is None:
        return None
    path = base.joinpath(*name.split("."))
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py") if path.with_suffix(".py").is_file() else None


def _imports(path: Path) -> set[str]:
    """First-party modules `path` imports at run time (anywhere in the file; not under `if TYPE_CHECKING:`); a
    package whose `__init__` calls `import_all` (`seqforge.plugins`) imports every module it holds."""
    tree = ast.parse(path.read_text())
    package = ".".join(path.parent.relative_to(SRC).parts) if path.name == "__init__.py" and SRC in path.parents else ""
    discovered = {f"{package}.{p.stem}" for p in path.parent.glob("*.py") if p.name != "__init__.py"}
    skipped = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
               for child in node.body for n in ast.walk(child)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Call) and ast.unparse(node.func) == "import_all" and package:
            found |= discovered
    return {name for name in found if _module_file(name)}


def _with_parents(name: str) -> set[str]:
    """`a.b.c` -> {a, a.b, a.b.c}: importing a module runs its packages' `__init__` first."""
    parts = name.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts) + 1)}


def closure(entry: str) -> set[Path]:
    """Every first-party source file importing module `entry` runs."""
    seen: set[str] = set()
    todo = list(_with_parents(entry))
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for dep in _imports(_module_file(name)):
            todo += list(_with_parents(dep) - seen)
    return {_module_file(n).relative_to(ROOT) for n in seen if _module_file(n)}


def covered(path: Path, deps: list[str]) -> bool:
    return any(path == Path(d) or Path(d) in path.parents for d in deps)


def stage_deps(dvc_file: Path) -> dict[str, tuple[str, list[str]]]:
    """stage -> (its `pipelines.<stage>` entry module, its deps relative to the repository root)."""
    stages = yaml.safe_load(dvc_file.read_text())["stages"]
    out = {}
    for name, stage in stages.items():
        body = stage.get("do", stage)
        module = "pipelines." + body["cmd"].split()[1]
        wdir = (dvc_file.parent / body.get("wdir", ".")).resolve()
        out[name] = (module, [str((wdir / d).resolve().relative_to(ROOT)) for d in body.get("deps", [])])
    return out


def missing_deps(dvc_file: Path) -> dict[str, list[str]]:
    """Per stage, the source files its entry point imports that its deps do not name."""
    missing = {}
    for stage, (module, deps) in stage_deps(dvc_file).items():
        if absent := sorted(str(p) for p in closure(module) if not covered(p, deps)):
            missing[stage] = absent
    return missing


DVC_FILES = [ROOT / "dvc.yaml", ROOT / "sweeps" / "dvc.yaml", ROOT / "studies" / "dvc.yaml",
             ROOT / "studies" / "long" / "dvc.yaml"]


@pytest.mark.parametrize("dvc_file", DVC_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_stage_depends_on_the_code_it_runs(dvc_file: Path) -> None:
    assert missing_deps(dvc_file) == {}


def test_a_planted_miss_is_caught(tmp_path: Path) -> None:
    text = (ROOT / "dvc.yaml").read_text()
    assert "        - src/seqforge/training\n" in text
    planted = tmp_path / "dvc.yaml"
    planted.write_text(text.replace("        - src/seqforge/training\n", "", 1))
    (tmp_path / "conf").mkdir()
    missing = missing_deps_at(planted)
    assert "src/seqforge/training/averaging.py" in missing["train"]


def missing_deps_at(dvc_file: Path) -> dict[str, list[str]]:
    """`missing_deps` of a dvc.yaml copied elsewhere (its paths read as if it were the repository's)."""
    moved = ROOT / f".planted-{dvc_file.parent.name}.yaml"
    try:
        moved.write_text(dvc_file.read_text())
        return missing_deps(moved)
    finally:
        moved.unlink()


def test_no_import_circles() -> None:
    modules = {".".join(p.relative_to(SRC).with_suffix("").parts).removesuffix(".__init__")
               for p in (SRC / "seqforge").rglob("*.py")}
    graph = {m: {d for d in _imports(_module_file(m)) if d in modules and d != m} for m in modules}
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> list[str] | None:
        state[node] = 1
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                return stack[stack.index(dep):] + [dep] if dep in stack else [node, dep]
            if not state.get(dep) and (found := visit(dep, [*stack, dep])):
                return found
        state[node] = 2
        return None

    for module in sorted(modules):
        if not state.get(module) and (cycle := visit(module, [module])):
            pytest.fail("import circle: " + " -> ".join(cycle))


def test_no_module_over_the_line_limit() -> None:
    long = {str(p.relative_to(ROOT)): n for p in (SRC / "seqforge").rglob("*.py")
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}


def test_ray_train_callbacks_import_no_torch_lightning_or_mlflow() -> None:
    """Ray Train's controller imports the module of every callback it runs, before it starts the workers:
    Lightning and MLflow there cost each run's start about 11 s on 2 cores (`python -m bench.ray_start`)."""
    import subprocess
    import sys

    code = ("import sys, seqforge.training.progress, seqforge.training.registered; "
            "print(sorted({'torch', 'lightning', 'mlflow'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out
