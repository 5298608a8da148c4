"""`seqforge task add|list|remove`: a task names a corpus, a language pair and experiment templates, each
experiment sized to the corpus (`experiments.recipes`); `conf/pipeline.yaml`, what the dvc.yaml files iterate
over, is regenerated. Removing a task removes its experiments and sweeps, not its registered versions."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from seqforge.catalog import CatalogError
from seqforge.config.base import CONF_DIR, NAME_PATTERN, ConfigError, base_lang, merge, read_yaml, validate
from seqforge.config.index import write_index
from seqforge.config.shared import PLAN_KEYS
from seqforge.core import paths
from seqforge.core.durations import duration_seconds
from seqforge.corpora.registry import load_corpus
from seqforge.experiments.config import experiment_names, tuned_file
from seqforge.experiments.recipes import size_task
from seqforge.tasks.registry import KINDS, task_names, task_schema

CJK = {"zh", "ja", "ko"}  # languages whose tasks default to sentencepiece (character coverage, byte fallback)


def add_task(
    name: str,
    kind: str,
    corpus_name: str,
    src: str | None = None,
    tgt: str | None = None,
    experiments: str | None = None,
    conf_dir: Path = CONF_DIR,
    *,
    budget: str | None = None,
    updates: int | None = None,
    data_dir: Path = paths.DATA,
) -> tuple[list[Path], list[str]]:
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
    record["tokenizer"] = (
        {"library": "sentencepiece", "model": "unigram", "vocab_size": 8000}
        if {base_lang(lang) for lang in languages.values()} & CJK
        else {"library": "tokenizers", "model": "bpe", "vocab_size": 8000}
    )
    try:
        validate(task_schema(), {"name": name, **record}, f"task {name}")
    except ConfigError as err:
        raise CatalogError(str(err)) from None
    templates = [t.strip() for t in (experiments or ",".join(KINDS[kind].templates)).split(",") if t.strip()]
    known = experiment_names(conf_dir)
    files = []
    for template in templates:
        if template not in known:
            raise CatalogError(
                f"--experiments: no experiment template {template!r} in {conf_dir / 'experiments'} "
                f"(known: {', '.join(known)})"
            )
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
    task_file.write_text(
        f"# Added by `seqforge task add {name} --kind {kind} --corpus {corpus_name}`. Every key of\n"
        f"# conf/tasks/translation.yaml can be set here; unset ones take their defaults.\n"
        + yaml.safe_dump(record, sort_keys=False)
    )
    for exp_file, template in files:
        exp_file.write_text(
            f"# Experiment {template} on task {name}: the model, optimiser and train settings of\n"
            f"# conf/experiments/{template}.yaml as `seqforge task add` found them (a copy: this file\n"
            f"# stands alone, and the task it came from can be removed); `task add` printed which rule of\n"
            f"# conf/recipes.yaml sized it for the corpus, if any.\n"
            + yaml.safe_dump({"task": name, **values[exp_file]}, sort_keys=False)
        )
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
        rows.append(
            {
                "task": name,
                "kind": raw.get("kind"),
                "corpus": raw.get("corpus"),
                "languages": langs,
                "experiments": ", ".join(
                    e for e in experiment_names(conf_dir) if _task_of(conf_dir / "experiments" / f"{e}.yaml") == name
                ),
            }
        )
    return rows


def remove_task(name: str, conf_dir: Path = CONF_DIR) -> list[Path]:
    """Remove `conf/tasks/<name>.yaml`, its experiments and their sweeps and sweep winners; regenerate the index.
    Registered versions stay in MLflow; prepared data and models stay until DVC's outputs are cleaned."""
    task_file = conf_dir / "tasks" / f"{name}.yaml"
    if name not in task_names(conf_dir):
        raise CatalogError(f"{task_file}: no task {name!r} (tasks: {', '.join(task_names(conf_dir)) or 'none'})")
    experiments = [e for e in experiment_names(conf_dir) if _task_of(conf_dir / "experiments" / f"{e}.yaml") == name]
    templates = {
        e: t
        for e in experiment_names(conf_dir)
        if e not in experiments
        and (t := read_yaml(conf_dir / "experiments" / f"{e}.yaml").get("template")) in experiments
    }
    if templates:
        user, template = next(iter(templates.items()))
        raise CatalogError(
            f"{conf_dir / 'experiments' / f'{user}.yaml'}: template: experiment {template!r} of task "
            f"{name!r} is its template; remove its task first, or name another template"
        )
    removed = [task_file] + [
        f
        for e in experiments
        for f in (conf_dir / "experiments" / f"{e}.yaml", conf_dir / "tune" / f"{e}.yaml", tuned_file(e, conf_dir))
        if f.is_file()
    ]
    for path in removed:
        path.unlink()
    write_index(conf_dir)
    return removed
