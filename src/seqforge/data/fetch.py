"""Fetch raw corpora from their official source or an offline mirror, verified by SHA-256."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
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


def corpus_url(corpus: str, conf_dir: Path = CONF_DIR) -> str:
    """Where the corpus officially comes from: its archive, or the folder its files are in."""
    manifest = corpus_manifest(corpus, conf_dir)
    return manifest["archive"]["url"] if "archive" in manifest else manifest["url"].format(file="")


def _download(url: str, dest: Path, timeout: float) -> None:
    with urllib.request.urlopen(url, timeout=timeout) as resp, dest.open("wb") as out:
        shutil.copyfileobj(resp, out)


def _download_verified(url: str, dest: Path, expected: str, corpus: str, timeout: float) -> None:
    try:
        _download(url, dest, timeout)
    except (urllib.error.URLError, OSError) as err:
        raise FetchError(
            f"cannot download {url} ({err}). Either connect to the internet or point {MIRROR_ENV} "
            f"at an offline mirror holding {corpus}/ (e.g. {MIRROR_ENV}=../shared/data)."
        ) from err
    actual = sha256(dest)
    if actual != expected:
        raise FetchError(f"{url}: SHA-256 {actual} does not match the pinned {expected}")


def _extract_member(archive: Path, member: str, dest: Path) -> None:
    """Copy `member` out of a zip archive; `a.zip!b.txt` reads `b.txt` inside the nested `a.zip`."""
    outer, _, inner = member.partition("!")
    with zipfile.ZipFile(archive) as zf:
        if not inner:
            with zf.open(outer) as src, dest.open("wb") as out:
                shutil.copyfileobj(src, out)
            return
        nested = dest.with_suffix(".zip.part")
        with zf.open(outer) as src, nested.open("wb") as out:
            shutil.copyfileobj(src, out)
    try:
        _extract_member(nested, inner, dest)
    finally:
        nested.unlink()


def fetch_corpus(
    corpus: str,
    dest_dir: Path,
    mirror: Path | None = None,
    online: bool = True,
    timeout: float = 20.0,
) -> list[Path]:
    """Make `dest_dir` hold every file of `corpus`, each verified against its checksum.

    Files already present with the right checksum are kept. Missing ones come from the mirror
    when one is given (``$SEQFORGE_DATA_MIRROR``), else from the official source: one URL per
    file, or one archive (verified as a whole) whose members are extracted.
    """
    manifest = corpus_manifest(corpus)
    mirror = mirror or (Path(os.environ[MIRROR_ENV]) if os.environ.get(MIRROR_ENV) else None)
    if mirror is not None and not (mirror / corpus).is_dir():
        raise FetchError(f"{MIRROR_ENV}={mirror}: no folder {mirror / corpus} with the {corpus} files")
    dest_dir.mkdir(parents=True, exist_ok=True)
    files = {name: dest_dir / name for name in manifest["files"]}
    missing = [n for n, path in files.items() if not (path.is_file() and sha256(path) == manifest["files"][n])]
    if not missing:
        return list(files.values())
    if mirror is None and not online:
        raise FetchError(f"offline and no {MIRROR_ENV} set: cannot obtain {corpus}/{missing[0]}")
    with tempfile.TemporaryDirectory(dir=dest_dir) as tmp:
        if mirror is None and "archive" in manifest:
            archive = manifest["archive"]
            part = Path(tmp) / "archive.zip"
            _download_verified(archive["url"], part, archive["sha256"], corpus, timeout)
            for name, member in archive["members"].items():
                _extract_member(part, member, Path(tmp) / name)
                (Path(tmp) / name).replace(files[name])
            return list(files.values())
        for name in missing:
            part = Path(tmp) / name
            if mirror is not None:
                source = mirror / corpus / name
                if not source.is_file():
                    raise FetchError(f"{source}: missing from the mirror {mirror}")
                shutil.copyfile(source, part)
                actual = sha256(part)
                if actual != manifest["files"][name]:
                    raise FetchError(f"{source}: SHA-256 {actual} does not match the pinned {manifest['files'][name]}")
            else:
                _download_verified(manifest["url"].format(file=name), part, manifest["files"][name], corpus, timeout)
            part.replace(files[name])
    return list(files.values())


def fetch_all(corpora: list[str], data_dir: Path, mirror: Path | None = None) -> dict[str, list[Path]]:
    """Fetch every corpus the tasks use into `data_dir/<corpus>/`."""
    return {corpus: fetch_corpus(corpus, data_dir / corpus, mirror=mirror) for corpus in corpora}
