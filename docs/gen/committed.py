"""The committed inputs the generated blocks read: each file as git's index holds it (what is committed, or
staged to be), not as the working tree has it, so that a local run (`make smoke` rewrites `metrics/`) changes no
page. Outside a git checkout, the files as they are."""

from __future__ import annotations

import fnmatch
import subprocess
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


@cache
def _tracked() -> tuple[str, ...] | None:
    """Every path in git's index, or None outside a checkout."""
    try:
        proc = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, text=True)
    except FileNotFoundError:  # no git on this machine
        return None
    return tuple(proc.stdout.split("\0")) if proc.returncode == 0 else None


def files(folder: str, pattern: str = "*") -> list[Path]:
    """The committed files of `folder` (relative to the repository) whose names match `pattern`, sorted."""
    tracked = _tracked()
    if tracked is None:
        return sorted((ROOT / folder).glob(pattern))
    prefix = folder.rstrip("/") + "/"
    return sorted(
        ROOT / p
        for p in tracked
        if p.startswith(prefix) and "/" not in p[len(prefix) :] and fnmatch.fnmatch(p[len(prefix) :], pattern)
    )


def read_bytes(path: Path) -> bytes:
    """A file's committed content."""
    if _tracked() is None:
        return path.read_bytes()
    proc = subprocess.run(["git", "show", f":{path.relative_to(ROOT)}"], cwd=ROOT, capture_output=True)
    if proc.returncode != 0:
        raise FileNotFoundError(f"{path.relative_to(ROOT)}: not committed ({proc.stderr.decode().strip()})")
    return proc.stdout


def read_text(path: Path) -> str:
    return read_bytes(path).decode()
