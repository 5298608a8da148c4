"""Ray Train's checkpoint storage, as a driver and a worker both see it: the file a checkpoint holds, and
whether the storage answers (waited for with retries before each checkpoint; asked by the driver when a run
fails). Neither Lightning nor Ray Train here: a driver imports this without paying for them."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from seqforge.core.digests import differences, file_digests

CHECKPOINT_NAME = "checkpoint.ckpt"  # the Lightning file inside a Ray checkpoint (`RayTrainReportCallback`'s name)
MANIFEST = "manifest.json"  # a checkpoint's other files' sizes and SHA-256 (each is checked: upload order is moot)


def seal(folder: Path) -> None:
    """Record what the checkpoint in `folder` holds (`MANIFEST`), once everything else in it is written."""
    (folder / MANIFEST).write_text(json.dumps(file_digests(folder)))


def torn(folder: Path) -> str | None:
    """Why the checkpoint in `folder` is not complete (its write cut, a file lost or changed since), or None."""
    try:
        recorded = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return f"no complete {MANIFEST} (its write did not finish)"
    return "; ".join(d for d in differences(folder, recorded) if d != f"{MANIFEST} added") or None


class CheckpointStorageError(RuntimeError):
    """Ray's checkpoint storage did not answer before a checkpoint was written, after every retry."""


def wait_for_storage(fs, path: str, retries: int, first_wait: float = 1.0) -> None:
    """Return once storage `fs` answers a read of `path` (the run's folder), retrying `retries` times
    with doubling waits; then raise `CheckpointStorageError` with the storage's last error."""
    for attempt in range(retries + 1):
        try:
            fs.get_file_info(path)
            return
        except OSError as err:
            if attempt == retries:
                waited = first_wait * (2**retries - 1)
                raise CheckpointStorageError(
                    f"checkpoint storage {fs.type_name}:{path} did not answer ({err}); gave up after "
                    f"{retries} retries over {waited:.0f} s. The last complete checkpoint stays the run's "
                    "resume point."
                ) from None
            time.sleep(first_wait * 2**attempt)


def room_for(fs, path: str, folder: Path) -> None:
    """Raise `CheckpointStorageError` when local storage `fs` has less room under `path` than the checkpoint in
    `folder` needs (a bucket has no such measure)."""
    if fs.type_name != "local":
        return
    needed = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    free = shutil.disk_usage(path).free
    if needed > free:
        raise full(path, f"the checkpoint needs {needed:,} bytes, {free:,} are free")


def full(path: str, detail: str) -> CheckpointStorageError:
    """The one line for checkpoint storage that has no room left."""
    return CheckpointStorageError(
        f"checkpoint storage {path} is full ({detail}). The last complete checkpoint stays the run's resume point: "
        "make room and run the stage again."
    )


def storage_unreachable(uri: str, retries: int) -> str | None:
    """Why Ray's storage at `uri` does not answer after `retries` (`wait_for_storage`), or None when it does."""
    import pyarrow.fs

    fs, path = pyarrow.fs.FileSystem.from_uri(uri)
    try:
        wait_for_storage(fs, path, retries)
    except CheckpointStorageError as err:
        return str(err)
    return None
