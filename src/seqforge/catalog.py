"""Bring your own data: `seqforge corpus add|list|remove` and `seqforge task add|list|remove` edit conf/.

A corpus is validated by reading it (its format's reader), copied into `data/<name>/`, recorded with the
SHA-256 of its files in `conf/corpora/<name>.yaml` and pinned as its own output in `data.dvc`. A task names
a corpus, a language pair and experiment templates; `conf/pipeline.yaml` (what the dvc.yaml files iterate
over) is regenerated. A bad input is one `CatalogError` naming the file, line or option, and leaves nothing
half-written. Removing a task removes its experiments and sweeps, not its registered versions in MLflow.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import yaml

from seqforge import paths
from seqforge.config.base import (
    CONF_DIR,
    LANG_PATTERN,
    NAME_PATTERN,
    ConfigError,
    base_lang,
    merge,
    read_yaml,
    validate,
)
from seqforge.config.experiment import experiment_names, tuned_file
from seqforge.config.index import write_index
from seqforge.config.shared import PLAN_KEYS
from seqforge.corpora.base import CorpusError
from seqforge.corpora.fetch import sha256
from seqforge.corpora.pins import pin, unpin
from seqforge.corpora.registry import FORMATS, CorpusCfg, corpus_names, load_corpus, read_corpus
from seqforge.data.arrow_files import ScratchDir
from seqforge.data.splits import BATCH, split_masks
from seqforge.data.text import length_unit, lengths, normalize_texts
from seqforge.durations import duration_seconds
from seqforge.recipes import size_task
from seqforge.tasks.registry import KINDS, task_names, task_schema
from seqforge.tasks.translation import DROPS, TranslationData, drop_codes

CJK = {"zh", "ja", "ko"}  # languages whose tasks default to sentencepiece (character coverage, byte fallback)


class CatalogError(ValueError):
    """A corpus or task cannot be added or removed; the message names the file, line or option."""


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


def _quantiles(values: np.ndarray) -> str:
    if not len(values):
        return "-"
    p50, p90, p99 = np.percentile(values, [50, 90, 99])
    return f"p50 {p50:.0f} · p90 {p90:.0f} · p99 {p99:.0f} · max {values.max()}"


def describe(corpus: CorpusCfg, root: Path, scratch: Path) -> list[str]:
    """Read the whole corpus (as prepare will) and summarise it: pairs, languages, lengths, drops."""
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


def user_paths(message: str, stage: Path, origin: str) -> str:
    """`message` naming the files `corpus add` gave it (`origin`: a file, a folder or a dataset's name) rather
    than their scratch copies in `stage`."""
    if Path(origin).is_file():
        message = message.replace(str(stage / Path(origin).name), origin)
    return message.replace(str(stage), origin)


def add_corpus(name: str, fmt: str, sources: list[str], columns: str | None = None, split: str | None = None,
               seed: int = 0, conf_dir: Path = CONF_DIR, data_dir: Path = paths.DATA) -> tuple[CorpusCfg, list[str]]:
    """Validate a corpus by reading it, copy it into `data/<name>/`, record it, pin it in `data.dvc`."""
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
            raise CatalogError(user_paths(str(err), stage, origin if fmt != "hf" else name)) from None
        data_dir.mkdir(parents=True, exist_ok=True)
        shutil.copytree(stage, dest)
    path = conf_dir / "corpora" / f"{name}.yaml"
    header = (f"# Added by `seqforge corpus add {name} --format {fmt}`: the files in data/{name}/ (SHA-256 pinned;\n"
              f"# data.dvc pins the bytes) and how to read them.\n")
    path.write_text(header + yaml.safe_dump({k: v for k, v in record.items() if v not in ({}, [], None)},
                                            sort_keys=False, allow_unicode=True))
    try:
        pinned = pin(dest)
    except CorpusError as err:
        raise CatalogError(f"{err} ({dest} and {path} are written; run `dvc add {dest}` once it works)") from None
    summary.append(f"recorded in {path}; {pinned}")
    return corpus, summary


def add_task(name: str, kind: str, corpus_name: str, src: str | None = None, tgt: str | None = None,
             experiments: str | None = None, conf_dir: Path = CONF_DIR, *, budget: str | None = None,
             updates: int | None = None, data_dir: Path = paths.DATA) -> tuple[list[Path], list[str]]:
    """Write `conf/tasks/<name>.yaml` and one experiment per template; regenerate conf/pipeline.yaml. Returns
    the files written and what sized them.

    Every experiment's budget is `budget` (a time) or `updates`, else the project's default (`train.budget` of
    conf/config.yaml), never the template's: that was sized for the template's corpus. The vocabulary and the
    models' dropout and width come from the rule of `conf/recipes.yaml` for the corpus's training pairs."""
    plan = _plan_override(budget, updates)
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
        validate(task_schema(), {"name": name, **record}, f"task {name}")
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
    values = {}
    for exp_file, template in files:
        copied = {k: v for k, v in _template_values(template, conf_dir).items() if k not in ("task", "template")}
        # the template's budget was sized for its own corpus: the new task gets --budget/--updates, or the
        # project's default budget (conf/config.yaml `train.budget`)
        train = {k: v for k, v in (copied.get("train") or {}).items() if k not in PLAN_KEYS} | plan
        values[exp_file] = {k: v for k, v in copied.items() if k != "train"} | ({"train": train} if train else {})
    try:  # before anything is written: a bad rule leaves no file behind
        sized = size_task(name, kind, corpus, record, {p.stem: v for p, v in values.items()}, conf_dir, data_dir)
    except ConfigError as err:
        raise CatalogError(str(err)) from None
    task_file.write_text(f"# Added by `seqforge task add {name} --kind {kind} --corpus {corpus_name}`. Every key of\n"
                         f"# conf/tasks/translation.yaml can be set here; unset ones take their defaults.\n"
                         + yaml.safe_dump(record, sort_keys=False))
    for exp_file, template in files:
        exp_file.write_text(f"# Experiment {template} on task {name}: the model, optimiser and train settings of\n"
                            f"# conf/experiments/{template}.yaml as `seqforge task add` found them (a copy: this file\n"
                            f"# stands alone, and the task it came from can be removed); `task add` printed which rule of\n"
                            f"# conf/recipes.yaml sized it for the corpus, if any.\n"
                            + yaml.safe_dump({"task": name, **values[exp_file]}, sort_keys=False))
    write_index(conf_dir)
    return [task_file, *(f for f, _ in files)], sized


def _plan_override(budget: str | None, updates: int | None) -> dict:
    """`--budget` / `--updates` as a train section, checked."""
    if budget is not None and updates is not None:
        raise CatalogError("--budget and --updates: give one (a time on this machine, or a number of updates)")
    if budget is not None:
        try:
            duration_seconds(budget)
        except ValueError as err:
            raise CatalogError(f"--budget: {err}") from None
        return {"budget": budget}
    if updates is not None:
        if updates < 1:
            raise CatalogError(f"--updates: {updates} is not a number of updates (give 1 or more)")
        return {"updates": updates}
    return {}


def _template_values(template: str, conf_dir: Path) -> dict:
    """An experiment file's values with its own template (if it names one) merged under them."""
    data = read_yaml(conf_dir / "experiments" / f"{template}.yaml")
    return merge(_template_values(data["template"], conf_dir), data) if data.get("template") else data


def _task_of(exp_file: Path) -> str | None:
    task = read_yaml(exp_file).get("task")
    return task if isinstance(task, str) else None


def task_table(conf_dir: Path = CONF_DIR) -> list[dict]:
    """One row per task: kind, corpus, languages and its experiments."""
    rows = []
    for name in task_names(conf_dir):
        raw = read_yaml(conf_dir / "tasks" / f"{name}.yaml")
        langs = raw.get("lang") or "-".join(str(raw.get(k, "?")) for k in ("src_lang", "tgt_lang"))
        rows.append({"task": name, "kind": raw.get("kind"), "corpus": raw.get("corpus"), "languages": langs,
                     "experiments": ", ".join(e for e in experiment_names(conf_dir)
                                              if _task_of(conf_dir / "experiments" / f"{e}.yaml") == name)})
    return rows


def remove_task(name: str, conf_dir: Path = CONF_DIR) -> list[Path]:
    """Remove `conf/tasks/<name>.yaml`, its experiments and their sweeps and sweep winners; regenerate the index.
    Registered versions stay in MLflow; prepared data and models stay until DVC's outputs are cleaned."""
    task_file = conf_dir / "tasks" / f"{name}.yaml"
    if name not in task_names(conf_dir):
        raise CatalogError(f"{task_file}: no task {name!r} (tasks: {', '.join(task_names(conf_dir)) or 'none'})")
    experiments = [e for e in experiment_names(conf_dir) if _task_of(conf_dir / "experiments" / f"{e}.yaml") == name]
    templates = {e: t for e in experiment_names(conf_dir) if e not in experiments
                 and (t := read_yaml(conf_dir / "experiments" / f"{e}.yaml").get("template")) in experiments}
    if templates:
        user, template = next(iter(templates.items()))
        raise CatalogError(f"{conf_dir / 'experiments' / f'{user}.yaml'}: template: experiment {template!r} of task "
                           f"{name!r} is its template; remove its task first, or name another template")
    removed = [task_file] + [f for e in experiments for f in (conf_dir / "experiments" / f"{e}.yaml",
                                                              conf_dir / "tune" / f"{e}.yaml", tuned_file(e, conf_dir))
                             if f.is_file()]
    for path in removed:
        path.unlink()
    write_index(conf_dir)
    return removed


def corpus_table(conf_dir: Path = CONF_DIR, data_dir: Path = paths.DATA) -> list[dict]:
    """One row per corpus: format, languages, whether its files are here, and the tasks that use it."""
    users: dict[str, list[str]] = {}
    for task in task_names(conf_dir):
        users.setdefault(str(read_yaml(conf_dir / "tasks" / f"{task}.yaml").get("corpus")), []).append(task)
    rows = []
    for name in corpus_names(conf_dir):
        corpus = load_corpus(name, conf_dir)
        here = all((data_dir / name / f).is_file() for f in corpus.files)
        rows.append({"corpus": name, "format": corpus.format,
                     "languages": "dialogues" if corpus.dialogue else ", ".join(corpus.languages),
                     "files": "here" if here else "not fetched", "tasks": ", ".join(users.get(name, []))})
    return rows


def remove_corpus(name: str, conf_dir: Path = CONF_DIR, data_dir: Path = paths.DATA) -> list[str]:
    """Remove a corpus no task uses: its record, its `data.dvc` output and its files in `data/`."""
    path = conf_dir / "corpora" / f"{name}.yaml"
    if name not in corpus_names(conf_dir):
        raise CatalogError(f"{path}: no corpus {name!r} (corpora: {', '.join(corpus_names(conf_dir)) or 'none'})")
    users = [t for t in task_names(conf_dir) if read_yaml(conf_dir / "tasks" / f"{t}.yaml").get("corpus") == name]
    if users:
        raise CatalogError(f"corpus {name!r} is used by task{'s' * (len(users) > 1)} {', '.join(users)}: "
                           "remove those first (`seqforge task remove`)")
    path.unlink()
    done = [f"removed {path}"]
    if unpin(data_dir / name):
        done.append("its output in data.dvc")
    if (data_dir / name).exists():
        shutil.rmtree(data_dir / name)
        done.append(f"{data_dir / name}/")
    return done
