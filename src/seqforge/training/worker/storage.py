"""Ray Train's checkpoint storage, as a driver and a worker both see it: the file a checkpoint holds, and
whether the storage answers (waited for with retries before each checkpoint; asked by the driver when a run
fails). Neither Lightning nor Ray Train here: a driver imports this without paying for them."""

from __future__ import annotations

import time

CHECKPOINT_NAME = "checkpoint.ckpt"  # the Lightning file inside a Ray checkpoint (`RayTrainReportCallback`'s name)


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


def storage_unreachable(uri: str, retries: int) -> str | None:
    """Why Ray's storage at `uri` does not answer after `retries` (`wait_for_storage`), or None when it does."""
    import pyarrow.fs

    fs, path = pyarrow.fs.FileSystem.from_uri(uri)
    try:
        wait_for_storage(fs, path, retries)
    except CheckpointStorageError as err:
        return str(err)
    return None
