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
    """A writable copy of conf/ on the default profile (whatever the checkout's is) to edit in a test."""
    import shutil

    from seqforge.config import set_profile

    dest = tmp_path / "conf"
    shutil.copytree(ROOT / "conf", dest)
    set_profile("default", dest)
    return dest
