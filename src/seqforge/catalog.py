"""Bring your own data: `seqforge corpus add` and `seqforge task add` record corpora and tasks in conf/.

A corpus is validated by reading it (the prepare stage's readers), copied into `data/<name>/`,
recorded with the SHA-256 of its files in `conf/corpora/<name>.yaml` and pinned by DVC with the
built-in corpora (`data.dvc`). A task names a corpus, a language pair and experiment templates;
`conf/pipeline.yaml` (what dvc.yaml iterates over) is regenerated. A bad input is one
`CatalogError` naming the file, line or option, and leaves nothing half-written.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import yaml

from seqforge import paths
from seqforge.config import (
    CONF_DIR, FORMATS, LANG_PATTERN, NAME_PATTERN, ConfigError, CorpusCfg, TaskCfg, TranslationData, base_lang,
    corpus_names, experiment_names, load_corpus, task_names, validate, write_index,
)
from seqforge.data.fetch import sha256
from seqforge.data.readers import MULTI30K_SPLITS, CorpusError, ScratchDir, read_corpus
from seqforge.data.text import length_unit, lengths, normalize_texts
from seqforge.tasks import KINDS

CJK = {"zh", "ja", "ko"}  # languages whose tasks default to sentencepiece (character coverage, byte fallback)


class CatalogError(ValueError):
    """A corpus or task cannot be added; the message names the file, line or option."""


def parse_columns(text: str | None) -> dict[str, str | int]:
    """`ko=0,en=1` -> {"ko": 0, "en": 1}; names stay strings (`en=english`, `turns=dialog`)."""
    columns: dict[str, str | int] = {}
    for item in filter(None, (text or "").split(",")):
        key, sep, col = item.partition("=")
        if not sep or not key.strip() or not col.strip():
            raise CatalogError(f"--columns: expected LANG=COL, got {item!r}")
        columns[key.strip()] = int(col) if col.strip().isdigit() else col.strip()
    return columns


def parse_split(text: str | None) -> dict[str, int]:
    """`validation=500,test=500` -> sizes of the held-out sets."""
    sizes = {}
    for item in filter(None, (text or "").split(",")):
        key, sep, value = item.partition("=")
        if key not in ("validation", "test") or not sep or not value.isdigit() or int(value) < 1:
            raise CatalogError(f"--split: expected validation=N,test=N with N >= 1, got {item!r}")
        sizes[key] = int(value)
    return sizes


def _stage_files(fmt: str, sources: list[str], columns: dict, stage: Path) -> tuple[dict, list[str], str | None]:
    """Copy (or export) the source data into `stage`; returns the columns, the languages, the source."""
    def need(n: int) -> list[Path]:
        if len(sources) != n:
            raise CatalogError(f"--source: format {fmt} takes {n} source{'s' * (n > 1)}, got {len(sources)}")
        found = [Path(s).expanduser() for s in sources]
        for path in found:
            if not path.exists():
                raise CatalogError(f"--source: {path}: no such file or folder")
        return found

    if fmt in ("tsv", "csv", "jsonl", "parquet"):
        (src,) = need(1)
        if not src.is_file():
            raise CatalogError(f"--source: {src}: not a file")
        shutil.copyfile(src, stage / src.name)
        if not columns:
            raise CatalogError(f"--columns: format {fmt} needs LANG=COL,... (e.g. ko=0,en=1)")
        return columns, [k for k in columns if k != "turns"], str(src.resolve())
    if fmt == "text_pair":
        files = need(2)
        langs = list(columns) or [_suffix_lang(f) for f in files]
        if len(langs) != 2 or langs[0] == langs[1]:
            raise CatalogError(f"--columns: text_pair needs two different languages, got {langs}")
        if columns and sorted(str(c) for c in columns.values()) != ["0", "1"]:
            raise CatalogError("--columns: text_pair columns are the --source files, 0 and 1 (e.g. ko=0,en=1)")
        picked = [files[int(columns[lang])] if columns else f for lang, f in zip(langs, files, strict=True)]
        for path in picked:
            shutil.copyfile(path, stage / path.name)
        if picked[0].name == picked[1].name:
            raise CatalogError("--source: the two files need different names")
        return {lang: p.name for lang, p in zip(langs, picked, strict=True)}, langs, str(picked[0].parent.resolve())
    if fmt == "multi30k":
        (src,) = need(1)
        found = sorted(p.name for p in src.glob("*.gz"))
        langs = sorted({n.split(".")[-2] for n in found if n.split(".")[0] in MULTI30K_SPLITS.values()})
        if not langs:
            raise CatalogError(f"--source: {src}: no {{train,val,test_2016_flickr}}.<lang>.gz files")
        for name in found:
            shutil.copyfile(src / name, stage / name)
        return {}, langs, str(src.resolve())
    if fmt == "dailydialog":
        (src,) = need(1)
        files = [src] if src.is_file() else sorted(src.glob("*.txt"))
        if not files:
            raise CatalogError(f"--source: {src}: no .txt dialogue files")
        for path in files:
            shutil.copyfile(path, stage / path.name)
        return {}, [], str(src.resolve())
    if fmt == "hf":
        (name,) = sources
        return columns, [k for k in columns if k != "turns"], _export_hf(name, stage)
    raise CatalogError(f"--format: unknown format {fmt!r} (formats: {', '.join(FORMATS)})")


def _suffix_lang(path: Path) -> str:
    name = path.name.removesuffix(".gz")
    lang = name.rsplit(".", 1)[-1] if "." in name else ""
    if not re.match(LANG_PATTERN, lang):
        raise CatalogError(f"--source: {path}: cannot tell its language from the file name; "
                           "give --columns LANG=0,LANG=1")
    return lang


def _export_hf(source: str, stage: Path) -> str:
    """A Hugging Face dataset (local `save_to_disk` folder, or hub name[:config]) -> `<split>.parquet` files."""
    import datasets

    local = Path(source).expanduser()
    try:
        if local.exists():
            loaded = datasets.load_from_disk(str(local))
        else:
            name, _, config = source.partition(":")
            loaded = datasets.load_dataset(name, config or None)
    except FileNotFoundError as err:
        raise CatalogError(f"--source: {source}: not a dataset saved with save_to_disk ({err})") from None
    except (ConnectionError, OSError, ValueError, datasets.exceptions.DatasetNotFoundError) as err:
        offline = "HF_DATASETS_OFFLINE" in str(err) or "offline" in str(err).lower() or isinstance(err, ConnectionError)
        hint = (" Offline, only datasets already in the local Hugging Face cache load; download it on a "
                "connected machine first, or pass a folder written with `save_to_disk`.") if offline else ""
        raise CatalogError(f"--source: Hugging Face dataset {source!r} is not available: "
                           f"{str(err).splitlines()[0]}.{hint}") from None
    splits = loaded if isinstance(loaded, datasets.DatasetDict) else {"all": loaded}
    renamed = {"dev": "validation", "valid": "validation"}
    for split, data in splits.items():
        data.flatten().to_parquet(str(stage / f"{renamed.get(split, split)}.parquet"))
    return source if not local.exists() else str(local.resolve())


def _quantiles(values: np.ndarray) -> str:
    if not len(values):
        return "-"
    p50, p90, p99 = np.percentile(values, [50, 90, 99])
    return f"p50 {p50:.0f} · p90 {p90:.0f} · p99 {p99:.0f} · max {values.max()}"


def describe(corpus: CorpusCfg, root: Path, scratch: Path) -> list[str]:
    """Read the whole corpus (as prepare will) and summarise it: pairs, languages, lengths, drops."""
    from seqforge.data.pairs import BATCH, split_masks
    from seqforge.tasks.translation import DROPS, drop_codes

    rows = read_corpus(corpus, root, scratch)
    where = f"conf/corpora/{corpus.name}.yaml"
    counted = {c["values"]: c["counts"] for c in pc.value_counts(rows.column("split")).to_pylist()}
    splits = {s: counted[s] for s in ("train", "validation", "test", "all") if s in counted}
    lines = [f"{corpus.name}: {len(rows)} {'dialogues' if corpus.dialogue else 'pairs'} "
             f"({', '.join(f'{s} {n}' for s, n in splits.items())}), format {corpus.format}"]
    if corpus.dialogue:
        turns = pc.list_value_length(rows.column("turns")).to_numpy(zero_copy_only=False)
        lines.append(f"  turns per dialogue: {_quantiles(turns)}; {int((turns < 2).sum())} with fewer than 2 "
                     "turns would be dropped")
        split_masks(rows, "turns", corpus.split, corpus.seed, where)
        return lines
    lines.append(f"  languages: {', '.join(corpus.languages)}")
    lens = {lang: np.concatenate([lengths(normalize_texts(batch.column(lang)), length_unit(lang))
                                  for batch in rows.to_batches(BATCH)]) for lang in corpus.languages}
    for lang in corpus.languages:
        lines.append(f"  {lang} length ({length_unit(lang)}): {_quantiles(lens[lang])}")
    a, b = corpus.languages[:2]
    rules = TranslationData()
    dropped = np.bincount(drop_codes(lens[a], lens[b], rules), minlength=len(DROPS))
    lines.append(f"  {a}-{b} with the default cleaning: would drop {dropped[1]} empty, {dropped[2]} longer than "
                 f"{rules.max_tokens}, {dropped[3]} with a length ratio over {rules.max_ratio}")
    masks = split_masks(rows, a, corpus.split, corpus.seed, where)
    if "all" in splits:
        lines.append("  held out (by distinct source sentence, seed "
                     f"{corpus.seed}): " + ", ".join(f"{s} {int(m.sum())} pairs" for s, m in masks.items()))
    return lines


def _check_data_complete(data_dir: Path, conf_dir: Path) -> None:
    """`data.dvc` pins all of data/: every recorded corpus must be there, or pinning would drop it."""
    for name in corpus_names(conf_dir):
        corpus = load_corpus(name, conf_dir)
        for file, digest in corpus.files.items():
            path = data_dir / name / file
            if not path.is_file() or sha256(path) != digest:
                raise CatalogError(f"{path} is missing or changed, and data.dvc pins every corpus in {data_dir}/: "
                                   "run `seqforge fetch` (or `dvc pull`) first")


def dvc_pin(data_dir: Path) -> str:
    """`dvc add data`: pin every corpus in `data/` (the built-in ones and the new one) in `data.dvc`."""
    if not Path(".dvc").is_dir():
        return "not a DVC repository: data/ not pinned"
    proc = subprocess.run(["dvc", "add", str(data_dir)], capture_output=True, text=True)
    if proc.returncode:
        raise CatalogError(f"dvc add {data_dir} failed: {(proc.stderr or proc.stdout).strip()[-800:]}")
    return f"pinned in {data_dir}.dvc (commit it with conf/; `dvc push` shares the data)"


def add_corpus(name: str, fmt: str, sources: list[str], columns: str | None = None, split: str | None = None,
               seed: int = 0, conf_dir: Path = CONF_DIR, data_dir: Path = paths.DATA) -> tuple[CorpusCfg, list[str]]:
    """Validate a corpus by reading it, copy it into `data/<name>/`, record it, pin it with DVC."""
    if not re.match(NAME_PATTERN, name):
        raise CatalogError(f"corpus name {name!r}: use letters, digits, '-' and '_' (starting with a letter or digit)")
    if name in corpus_names(conf_dir):
        raise CatalogError(f"{conf_dir / 'corpora' / f'{name}.yaml'}: a corpus named {name!r} exists already")
    if fmt not in FORMATS:
        raise CatalogError(f"--format: unknown format {fmt!r} (formats: {', '.join(FORMATS)})")
    if not sources:
        raise CatalogError("--source: give the file(s), folder or Hugging Face dataset to read")
    cols, sizes = parse_columns(columns), parse_split(split)
    dest = data_dir / name
    if dest.exists():
        raise CatalogError(f"{dest}: exists already (remove it, or pick another corpus name)")
    if Path(".dvc").is_dir():
        _check_data_complete(data_dir, conf_dir)
    with ScratchDir(data_dir.parent / paths.ARTIFACTS) as scratch:
        stage = scratch / "files"
        stage.mkdir()
        cols, langs, origin = _stage_files(fmt, sources, cols, stage)
        for lang in langs:
            if not re.match(LANG_PATTERN, lang):
                raise CatalogError(f"--columns: {lang!r} is not a language code (e.g. en, ko, zh-Hans)")
        record = {"format": fmt, "source": origin, "languages": langs, "columns": cols,
                  "header": any(isinstance(c, str) for c in cols.values()) and fmt in ("tsv", "csv"),
                  "split": sizes, "seed": seed,
                  "files": {p.name: sha256(p) for p in sorted(stage.iterdir())}}
        if fmt == "hf" and len(record["files"]) > 1 and not sizes and "all.parquet" in record["files"]:
            raise CatalogError("--split: this dataset has no train/validation/test splits: give --split")
        try:
            corpus = validate(CorpusCfg, {"name": name, **record}, f"corpus {name}")
            summary = describe(corpus, stage, scratch / "cache")
        except (ConfigError, CorpusError) as err:
            raise CatalogError(str(err).replace(str(stage), str(Path(origin)) if fmt != "hf" else name)) from None
        data_dir.mkdir(parents=True, exist_ok=True)
        shutil.copytree(stage, dest)
    path = conf_dir / "corpora" / f"{name}.yaml"
    header = (f"# Added by `seqforge corpus add {name} --format {fmt}`: the files in data/{name}/ (SHA-256 pinned;\n"
              f"# data.dvc pins the bytes) and how to read them.\n")
    path.write_text(header + yaml.safe_dump({k: v for k, v in record.items() if v not in ({}, [], None)},
                                            sort_keys=False, allow_unicode=True))
    summary.append(f"recorded in {path}; {dvc_pin(data_dir)}")
    return corpus, summary


def add_task(name: str, kind: str, corpus_name: str, src: str | None = None, tgt: str | None = None,
             experiments: str | None = None, conf_dir: Path = CONF_DIR) -> list[Path]:
    """Write `conf/tasks/<name>.yaml` and one experiment per template; regenerate conf/pipeline.yaml."""
    if not re.match(NAME_PATTERN, name):
        raise CatalogError(f"task name {name!r}: use letters, digits, '-' and '_' (starting with a letter or digit)")
    task_file = conf_dir / "tasks" / f"{name}.yaml"
    if name in task_names(conf_dir):
        raise CatalogError(f"{task_file}: a task named {name!r} exists already")
    if kind not in KINDS:
        raise CatalogError(f"--kind: unknown kind {kind!r} (kinds: {', '.join(KINDS)})")
    try:
        corpus = load_corpus(corpus_name, conf_dir)
    except ConfigError as err:
        raise CatalogError(f"--corpus: {err}; add it first with `seqforge corpus add`") from None
    try:
        languages = KINDS[kind].languages(corpus, src, tgt)
    except ValueError as err:
        raise CatalogError(str(err)) from None
    record: dict = {"kind": kind, "corpus": corpus_name, **languages}
    record["tokenizer"] = ({"library": "sentencepiece", "model": "unigram", "vocab_size": 8000}
                           if {base_lang(lang) for lang in languages.values()} & CJK
                           else {"library": "tokenizers", "model": "bpe", "vocab_size": 8000})
    try:
        validate(TaskCfg, {"name": name, **record}, f"task {name}")
    except ConfigError as err:
        raise CatalogError(str(err)) from None
    templates = [t.strip() for t in (experiments or ",".join(KINDS[kind].templates)).split(",") if t.strip()]
    known = experiment_names(conf_dir)
    files = []
    for template in templates:
        if template not in known:
            raise CatalogError(f"--experiments: no experiment template {template!r} in {conf_dir / 'experiments'} "
                               f"(known: {', '.join(known)})")
        exp_file = conf_dir / "experiments" / f"{name}_{template}.yaml"
        if exp_file.exists():
            raise CatalogError(f"{exp_file}: exists already")
        files.append((exp_file, template))
    task_file.write_text(f"# Added by `seqforge task add {name} --kind {kind} --corpus {corpus_name}`. Every key of\n"
                         f"# conf/tasks/translation.yaml can be set here; unset ones take their defaults.\n"
                         + yaml.safe_dump(record, sort_keys=False))
    for exp_file, template in files:
        exp_file.write_text(f"# Experiment {template} on task {name}: the template's model, optimiser and train\n"
                            f"# settings; keys set here override them.\n"
                            + yaml.safe_dump({"task": name, "template": template}, sort_keys=False))
    write_index(conf_dir)
    return [task_file, *(f for f, _ in files)]
