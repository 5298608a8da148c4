"""Shared fixtures: the repository root, the corpus mirror, small synthetic corpora."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MIRROR = Path(os.environ.get("SEQFORGE_DATA_MIRROR", ROOT.parent / "shared" / "data")).resolve()


@pytest.fixture
def mirror() -> Path:
    if not (MIRROR / "multi30k").is_dir():
        pytest.skip(f"no corpus mirror at {MIRROR} (set SEQFORGE_DATA_MIRROR)")
    return MIRROR


@pytest.fixture
def conf_copy(tmp_path: Path) -> Path:
    """A writable copy of conf/ to edit in a test."""
    import shutil

    dest = tmp_path / "conf"
    shutil.copytree(ROOT / "conf", dest)
    return dest
