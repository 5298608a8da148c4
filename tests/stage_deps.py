"""The source code each DVC stage runs, as its `deps`: read from the imports of its entry point
(`pipelines/stage <stage>` runs `pipelines.<stage>`), so `dvc repro` reruns a stage whenever code it runs
changed, and only then. `tests/test_layout.py` checks the dvc.yaml files against it;
`python tests/stage_deps.py` (`make deps`) rewrites their source deps after a change of imports."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from imports import ROOT, module_file, runs_on_import

DVC_FILES = [
    ROOT / "dvc.yaml",
    ROOT / "sweeps" / "dvc.yaml",
    ROOT / "studies" / "dvc.yaml",
    ROOT / "studies" / "long" / "dvc.yaml",
]
SOURCE_DIRS = ("pipelines/", "src/")  # deps under these are source code: derived, never written by hand
WHOLE = {Path("."), Path("src"), Path("src/seqforge"), Path("pipelines")}  # never named as one folder dep


def closure(entry: str) -> set[Path]:
    """Every first-party source file that running module `entry` may execute, relative to the repository root:
    what it imports, and what the functions it calls import when they run (a register stage loads the model it
    logs, and with it the decoding code its pyfunc imports there)."""
    return {module_file(n).relative_to(ROOT) for n in runs_on_import(entry, ("module", "function"))}


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


def source_deps(entry: str) -> list[str]:
    """The fewest paths that name exactly the files `entry` runs: a folder where it runs every module in it."""
    files = closure(entry)
    chosen: set[Path] = set()
    for path in files:
        top = path
        for folder in path.parents:
            if folder in WHOLE or not all(p.relative_to(ROOT) in files for p in (ROOT / folder).rglob("*.py")):
                break
            top = folder
        chosen.add(top)
    return sorted(str(p) for p in chosen if not any(q in p.parents for q in chosen))


def rewritten(dvc_file: Path) -> str:
    """The text of `dvc_file` with every stage's source deps replaced by `source_deps` of its entry point
    (comments and the other deps stay where they are)."""
    entries = {name: module for name, (module, _) in stage_deps(dvc_file).items()}
    lines = dvc_file.read_text().splitlines(keepends=True)
    out, stage, in_deps, written = [], None, False, set()
    for line in lines:
        if m := re.match(r"^  (\S+):\s*$", line):
            stage, in_deps = m.group(1), False
        if re.match(r"^\s+deps:\s*$", line):
            in_deps = True
            out.append(line)
            continue
        item = re.match(r"^(\s+)- (\S+)\s*$", line)
        if in_deps and item and stage in entries:
            if item.group(2).startswith(SOURCE_DIRS):
                if stage not in written:
                    out += [f"{item.group(1)}- {dep}\n" for dep in source_deps(entries[stage])]
                    written.add(stage)
                continue
        elif in_deps and not item:
            in_deps = False
        out.append(line)
    return "".join(out)


def rewrite(dvc_file: Path) -> bool:
    """`rewritten` written in place; returns whether the file changed."""
    text = rewritten(dvc_file)
    changed = text != dvc_file.read_text()
    dvc_file.write_text(text)
    return changed


if __name__ == "__main__":
    for dvc_file in DVC_FILES:
        print(f"{dvc_file.relative_to(ROOT)}: {'rewritten' if rewrite(dvc_file) else 'up to date'}")
