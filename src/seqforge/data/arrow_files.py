"""Arrow stream files written in batches and read back memory-mapped, in a scratch folder beside the outputs."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

import pyarrow as pa


def write_arrow(path: Path, batches: Iterable[pa.RecordBatch], schema: pa.Schema) -> pa.Table:
    """Record batches -> an Arrow stream file at `path`, read back memory-mapped (memory holds one batch)."""
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_stream(sink, schema) as writer:
        for batch in batches:
            writer.write_batch(batch)
    return pa.ipc.open_stream(pa.memory_map(str(path))).read_all()


class ScratchDir:
    """A temporary folder for Arrow caches beside the outputs (same disk), removed on exit."""

    def __init__(self, parent: Path) -> None:
        parent.mkdir(parents=True, exist_ok=True)
        self.path = Path(tempfile.mkdtemp(prefix=".scratch-", dir=parent))

    def __enter__(self) -> Path:
        return self.path

    def __exit__(self, *exc: object) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
