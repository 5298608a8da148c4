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

from seqforge.corpora.registry import CorpusCfg, corpus_format

MIRROR_ENV = "SEQFORGE_DATA_MIRROR"


class FetchError(RuntimeError):
    """A corpus file could not be obtained or failed verification."""


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def corpus_url(corpus: CorpusCfg) -> str:
    """Where the corpus comes from: its official archive or folder, or what `corpus add` read."""
    if corpus.archive is not None:
        return corpus.archive.url
    if corpus.url is not None:
        return corpus.url.format(file="")
    return corpus.source or f"data/{corpus.name}"


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


def _verified(path: Path, expected: str) -> bool:
    return path.is_file() and sha256(path) == expected


def fetch_corpus(
    corpus: CorpusCfg,
    dest_dir: Path,
    mirror: Path | None = None,
    online: bool = True,
    timeout: float = 20.0,
) -> list[Path]:
    """Make `dest_dir` hold every file of `corpus`, each verified against its checksum.

    Files already present with the right checksum are kept. Missing ones come from the mirror
    when it holds the corpus (``$SEQFORGE_DATA_MIRROR/<corpus>/``), else from the official
    source: one URL per file, or one archive (verified as a whole) whose members are extracted.
    A corpus added with `seqforge corpus add` has no official source: `dvc pull` restores it.
    """
    if corpus_format(corpus.format).params is not None:
        return _generated(corpus, dest_dir)
    mirror = mirror or (Path(os.environ[MIRROR_ENV]) if os.environ.get(MIRROR_ENV) else None)
    official = corpus.url is not None or corpus.archive is not None
    if mirror is not None and official and not (mirror / corpus.name).is_dir():
        raise FetchError(f"{MIRROR_ENV}={mirror}: no folder {mirror / corpus.name} with the {corpus.name} files")
    files = {name: dest_dir / name for name in corpus.files}
    missing = [n for n, path in files.items() if not _verified(path, corpus.files[n])]
    if not missing:
        return list(files.values())
    from_mirror = mirror is not None and (mirror / corpus.name).is_dir()
    if not official and not from_mirror:
        first = files[missing[0]]
        state = "differs from the SHA-256 pinned in" if first.is_file() else "is missing; it is pinned in"
        raise FetchError(
            f"{first} {state} conf/corpora/{corpus.name}.yaml: restore it with `dvc pull` "
            f"(or add the corpus again with `seqforge corpus add`)"
        )
    if not from_mirror and not online:
        raise FetchError(f"offline and no {MIRROR_ENV} set: cannot obtain {corpus.name}/{missing[0]}")
    dest_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest_dir) as tmp:
        if not from_mirror and corpus.archive is not None:
            archive = corpus.archive
            part = Path(tmp) / "archive.zip"
            _download_verified(archive.url, part, archive.sha256, corpus.name, timeout)
            for name, member in archive.members.items():
                _extract_member(part, member, Path(tmp) / name)
                (Path(tmp) / name).replace(files[name])
            return list(files.values())
        for name in missing:
            part = Path(tmp) / name
            part.parent.mkdir(parents=True, exist_ok=True)
            if from_mirror:
                source = mirror / corpus.name / name
                if not source.is_file():
                    raise FetchError(f"{source}: missing from the mirror {mirror}")
                shutil.copyfile(source, part)
                actual = sha256(part)
                if actual != corpus.files[name]:
                    raise FetchError(f"{source}: SHA-256 {actual} does not match the pinned {corpus.files[name]}")
            else:
                _download_verified(corpus.url.format(file=name), part, corpus.files[name], corpus.name, timeout)
            files[name].parent.mkdir(parents=True, exist_ok=True)
            part.replace(files[name])
    return list(files.values())


def generated_fresh(corpus: CorpusCfg, dest_dir: Path) -> bool:
    """Whether `fetch_corpus` would generate this generated corpus's files anew (unpinned, missing or changed)."""
    return not corpus.files or not all(_verified(dest_dir / name, sha) for name, sha in corpus.files.items())


def _generated(corpus: CorpusCfg, dest_dir: Path) -> list[Path]:
    """A generated corpus's files: kept when they match their pins, else written again from its parameters
    and checked against the pins (a corpus file without `files:` pins takes what the generator writes)."""
    if not generated_fresh(corpus, dest_dir):
        return [dest_dir / name for name in corpus.files]
    dest_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest_dir) as tmp:
        written = corpus_format(corpus.format).generate(corpus, Path(tmp))
        for path in written:
            expected, actual = corpus.files.get(path.name), sha256(path)
            if corpus.files and expected != actual:
                raise FetchError(
                    f"{dest_dir / path.name}: generated from conf/corpora/{corpus.name}.yaml with SHA-256 "
                    f"{actual}, but its `files:` pin {expected or 'nothing for it'}: the parameters or "
                    f"the generator changed (pin the new bytes in its `files:`; `seqforge fetch` then pins the "
                    f"folder in data.dvc)"
                )
        for path in written:
            path.replace(dest_dir / path.name)
    return [dest_dir / path.name for path in written]


def fetch_all(corpora: list[CorpusCfg], data_dir: Path, mirror: Path | None = None) -> dict[str, list[Path]]:
    """Fetch every corpus the tasks use into `data_dir/<corpus>/`."""
    return {corpus.name: fetch_corpus(corpus, data_dir / corpus.name, mirror=mirror) for corpus in corpora}
