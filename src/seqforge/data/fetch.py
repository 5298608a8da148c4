"""Fetch raw corpora from their official source or an offline mirror, verified by SHA-256."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import yaml

from seqforge.config import CONF_DIR

MIRROR_ENV = "SEQFORGE_DATA_MIRROR"


class FetchError(RuntimeError):
    """A corpus file could not be obtained or failed verification."""


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def corpus_manifest(corpus: str, conf_dir: Path = CONF_DIR) -> dict:
    """`{"url": template, "files": {name: sha256}}` for a corpus in `conf/corpora.yaml`."""
    manifest = yaml.safe_load((conf_dir / "corpora.yaml").read_text())
    if corpus not in manifest:
        raise FetchError(f"{conf_dir / 'corpora.yaml'}: no corpus {corpus!r} (known: {sorted(manifest)})")
    return manifest[corpus]


def _download(url: str, dest: Path, timeout: float) -> None:
    with urllib.request.urlopen(url, timeout=timeout) as resp, dest.open("wb") as out:
        shutil.copyfileobj(resp, out)


def fetch_corpus(
    corpus: str,
    dest_dir: Path,
    mirror: Path | None = None,
    online: bool = True,
    timeout: float = 20.0,
) -> list[Path]:
    """Make `dest_dir` hold every file of `corpus`, each verified against its checksum.

    Files already present with the right checksum are kept. Missing ones come from the mirror
    when one is given (``$SEQFORGE_DATA_MIRROR``), else from the official source.
    """
    manifest = corpus_manifest(corpus)
    mirror = mirror or (Path(os.environ[MIRROR_ENV]) if os.environ.get(MIRROR_ENV) else None)
    if mirror is not None and not (mirror / corpus).is_dir():
        raise FetchError(f"{MIRROR_ENV}={mirror}: no folder {mirror / corpus} with the {corpus} files")
    dest_dir.mkdir(parents=True, exist_ok=True)
    fetched = []
    for name, expected in manifest["files"].items():
        target = dest_dir / name
        if target.is_file() and sha256(target) == expected:
            fetched.append(target)
            continue
        with tempfile.TemporaryDirectory(dir=dest_dir) as tmp:
            part = Path(tmp) / name
            if mirror is not None:
                source = mirror / corpus / name
                if not source.is_file():
                    raise FetchError(f"{source}: missing from the mirror {mirror}")
                shutil.copyfile(source, part)
            elif online:
                source = manifest["url"].format(file=name)
                try:
                    _download(source, part, timeout)
                except (urllib.error.URLError, OSError) as err:
                    raise FetchError(
                        f"cannot download {source} ({err}). Either connect to the internet or "
                        f"point {MIRROR_ENV} at an offline mirror holding {corpus}/{name} "
                        f"(e.g. {MIRROR_ENV}=../shared/data)."
                    ) from err
            else:
                raise FetchError(f"offline and no {MIRROR_ENV} set: cannot obtain {corpus}/{name}")
            actual = sha256(part)
            if actual != expected:
                raise FetchError(f"{source}: SHA-256 {actual} does not match the pinned {expected}")
            part.replace(target)
        fetched.append(target)
    return fetched
