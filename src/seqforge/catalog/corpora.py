"""`seqforge corpus add|list|remove`: a corpus validated by reading it, copied into `data/<name>/`, recorded with
the SHA-256 of its files in `conf/corpora/<name>.yaml` and pinned as its own output in `data.dvc`."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import yaml

from seqforge.catalog import CatalogError
from seqforge.catalog.describe import describe
from seqforge.config.base import CONF_DIR, LANG_PATTERN, NAME_PATTERN, ConfigError, read_yaml, validate
from seqforge.core import paths
from seqforge.corpora.base import CorpusError
from seqforge.corpora.fetch import sha256
from seqforge.corpora.pins import pin, unpin
from seqforge.corpora.registry import FORMATS, CorpusCfg, corpus_names, load_corpus
from seqforge.data.arrow_files import ScratchDir
from seqforge.tasks.registry import task_names


def user_paths(message: str, stage: Path, origin: str) -> str:
    """`message` naming the files `corpus add` gave it (`origin`: a file, a folder or a dataset's name) rather
    than their scratch copies in `stage`."""
    if Path(origin).is_file():
        message = message.replace(str(stage / Path(origin).name), origin)
    return message.replace(str(stage), origin)


def add_corpus(
    name: str,
    fmt: str,
    sources: list[str],
    columns: dict[str, str | int] | None = None,
    split: dict[str, int] | None = None,
    seed: int = 0,
    conf_dir: Path = CONF_DIR,
    data_dir: Path = paths.DATA,
) -> tuple[CorpusCfg, list[str]]:
    """Validate a corpus by reading it, copy it into `data/<name>/`, record it, pin it in `data.dvc`.
    `columns`: language (or `turns`) -> column; `split`: held-out sizes of a one-file corpus."""
    if not re.match(NAME_PATTERN, name):
        raise CatalogError(f"corpus name {name!r}: use letters, digits, '-' and '_' (starting with a letter or digit)")
    if name in corpus_names(conf_dir):
        raise CatalogError(f"{conf_dir / 'corpora' / f'{name}.yaml'}: a corpus named {name!r} exists already")
    if fmt not in FORMATS:
        raise CatalogError(f"--format: unknown format {fmt!r} (formats: {', '.join(FORMATS)})")
    if not sources:
        raise CatalogError("--source: give the file(s), folder or Hugging Face dataset to read")
    cols, sizes = dict(columns or {}), dict(split or {})
    dest = data_dir / name
    if dest.exists():
        raise CatalogError(f"{dest}: exists already (remove it, or pick another corpus name)")
    with ScratchDir(data_dir.parent / paths.ARTIFACTS) as scratch:
        stage = scratch / "files"
        stage.mkdir()
        try:
            cols, langs, origin = FORMATS[fmt].stage(sources, cols, stage)
        except CorpusError as err:
            raise CatalogError(str(err)) from None
        for lang in langs:
            if not re.match(LANG_PATTERN, lang):
                raise CatalogError(f"--columns: {lang!r} is not a language code (e.g. en, ko, zh-Hans)")
        record = {
            "format": fmt,
            "source": origin,
            "languages": langs,
            "columns": cols,
            "header": any(isinstance(c, str) for c in cols.values()) and fmt in ("tsv", "csv"),
            "split": sizes,
            "seed": seed,
            "files": {p.name: sha256(p) for p in sorted(stage.iterdir())},
        }
        if fmt == "hf" and len(record["files"]) > 1 and not sizes and "all.parquet" in record["files"]:
            raise CatalogError("--split: this dataset has no train/validation/test splits: give --split")
        try:
            corpus = validate(CorpusCfg, {"name": name, **record}, f"corpus {name}")
            summary = describe(corpus, stage, scratch / "cache")
        except (ConfigError, CorpusError) as err:
            raise CatalogError(user_paths(str(err), stage, origin if fmt != "hf" else name)) from None
        data_dir.mkdir(parents=True, exist_ok=True)
        shutil.copytree(stage, dest)
    path = conf_dir / "corpora" / f"{name}.yaml"
    header = (
        f"# Added by `seqforge corpus add {name} --format {fmt}`: the files in data/{name}/ (SHA-256 pinned;\n"
        f"# data.dvc pins the bytes) and how to read them.\n"
    )
    path.write_text(
        header
        + yaml.safe_dump(
            {k: v for k, v in record.items() if v not in ({}, [], None)}, sort_keys=False, allow_unicode=True
        )
    )
    try:
        pinned = pin(dest)
    except CorpusError as err:
        raise CatalogError(f"{err} ({dest} and {path} are written; run `dvc add {dest}` once it works)") from None
    summary.append(f"recorded in {path}; {pinned}")
    return corpus, summary


def corpus_table(conf_dir: Path = CONF_DIR, data_dir: Path = paths.DATA) -> list[dict]:
    """One row per corpus: format, languages, whether its files are here, and the tasks that use it."""
    users: dict[str, list[str]] = {}
    for task in task_names(conf_dir):
        users.setdefault(str(read_yaml(conf_dir / "tasks" / f"{task}.yaml").get("corpus")), []).append(task)
    rows = []
    for name in corpus_names(conf_dir):
        corpus = load_corpus(name, conf_dir)
        here = all((data_dir / name / f).is_file() for f in corpus.files)
        rows.append(
            {
                "corpus": name,
                "format": corpus.format,
                "languages": "dialogues" if corpus.dialogue else ", ".join(corpus.languages),
                "files": "here" if here else "not fetched",
                "tasks": ", ".join(users.get(name, [])),
            }
        )
    return rows


def remove_corpus(name: str, conf_dir: Path = CONF_DIR, data_dir: Path = paths.DATA) -> list[str]:
    """Remove a corpus no task uses: its record, its `data.dvc` output and its files in `data/`."""
    path = conf_dir / "corpora" / f"{name}.yaml"
    if name not in corpus_names(conf_dir):
        raise CatalogError(f"{path}: no corpus {name!r} (corpora: {', '.join(corpus_names(conf_dir)) or 'none'})")
    users = [t for t in task_names(conf_dir) if read_yaml(conf_dir / "tasks" / f"{t}.yaml").get("corpus") == name]
    if users:
        raise CatalogError(
            f"corpus {name!r} is used by task{'s' * (len(users) > 1)} {', '.join(users)}: "
            "remove those first (`seqforge task remove`)"
        )
    path.unlink()
    done = [f"removed {path}"]
    if unpin(data_dir / name):
        done.append("its output in data.dvc")
    if (data_dir / name).exists():
        shutil.rmtree(data_dir / name)
        done.append(f"{data_dir / name}/")
    return done
