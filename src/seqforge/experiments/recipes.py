"""Recipes by corpus size (`conf/recipes.yaml`): a new task's subword vocabulary and its models' dropout and
width, from the number of training pairs its corpus holds. `seqforge task add` writes the matching rule's
values into the task and experiment files, where they can be changed like any other value. The rules
were chosen on validation BLEU (docs/guides/own-data.md; the grids: `python -m bench.recipes`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.compute as pc
from pydantic import Field, model_validator

from seqforge.config.base import CONF_DIR, ConfigError, Strict, merge, read_yaml, validate
from seqforge.config.shared import TokenizerCfg
from seqforge.core import paths
from seqforge.corpora.registry import CorpusCfg
from seqforge.data.arrow_files import ScratchDir
from seqforge.data.rows import read_corpus
from seqforge.data.splits import split_masks
from seqforge.experiments.config import experiment_schema
from seqforge.tasks.registry import task_schema


class RecipeRule(Strict):
    """One rule: the values a task and its experiments get when its corpus has at most `up_to` training pairs."""

    up_to: int | None = Field(None, ge=1)  # training pairs this rule covers (null: any number)
    tokenizer: dict[str, Any] = Field(default_factory=dict)  # keys of a task's `tokenizer` section
    families: dict[str, dict[str, Any]] = Field(
        default_factory=dict
    )  # model family (`model.arch`) -> keys of its experiments' `model`

    @model_validator(mode="after")
    def _tokenizer_keys(self) -> RecipeRule:
        if unknown := sorted(set(self.tokenizer) - set(TokenizerCfg.model_fields)):
            raise ValueError(
                f"tokenizer: unknown key(s) {', '.join(unknown)} (keys: {', '.join(TokenizerCfg.model_fields)})"
            )
        return self  # the values are checked with the task they go into


class Recipes(Strict):
    """Rules per task kind, smallest corpus first; the last rule of a kind covers any size."""

    kinds: dict[str, list[RecipeRule]]  # task kind -> its rules, smallest corpus first

    @model_validator(mode="after")
    def _ordered(self) -> Recipes:
        for kind, rules in self.kinds.items():
            bounds = [r.up_to for r in rules]
            if not rules or bounds[-1] is not None or None in bounds[:-1] or bounds[:-1] != sorted(set(bounds[:-1])):
                raise ValueError(f"kinds.{kind}: give rules in increasing `up_to`, the last one with `up_to: null`")
        return self


def recipes_file(conf_dir: Path = CONF_DIR) -> Path:
    return conf_dir / "recipes.yaml"


def load_recipes(conf_dir: Path = CONF_DIR) -> Recipes | None:
    """`conf/recipes.yaml`, validated; None where a project has none (templates keep their sizes)."""
    path = recipes_file(conf_dir)
    return validate(Recipes, read_yaml(path), str(path)) if path.is_file() else None


def rule_for(recipes: Recipes | None, kind: str, pairs: int) -> tuple[int, RecipeRule] | None:
    """The first rule of `kind` covering `pairs` training pairs, with its index; None without rules for `kind`."""
    rules = recipes.kinds.get(kind) if recipes else None
    if not rules:
        return None
    return next((i, r) for i, r in enumerate(rules) if r.up_to is None or pairs <= r.up_to)


def apply_rule(rule: RecipeRule, task: dict[str, Any], experiments: dict[str, dict[str, Any]]) -> list[str]:
    """Put the rule's values into a task record and its experiments' values (changed in place); what changed,
    as `key value` texts."""
    changes = [f"tokenizer.{k} {v}" for k, v in rule.tokenizer.items()]
    task["tokenizer"] = merge(task.get("tokenizer", {}), rule.tokenizer)
    for name, values in experiments.items():
        over = rule.families.get(values.get("model", {}).get("arch"), {})
        values["model"] = merge(values.get("model", {}), over)
        changes += [f"{name} model.{k} {v}" for k, v in over.items()]
    return changes


def rule_text(index: int, rule: RecipeRule, conf_dir: Path = CONF_DIR) -> str:
    bound = f"up to {rule.up_to:,} pairs" if rule.up_to else "any larger corpus"
    return f"{recipes_file(conf_dir)} rule {index + 1} ({bound})"


def training_pairs(corpus: CorpusCfg, data_dir: Path) -> int | None:
    """Training pairs of a corpus whose files are in `data_dir` (a dialogue: its turns after the first); None
    when they are not there."""
    root = data_dir / corpus.name
    if not root.is_dir():
        return None
    with ScratchDir(data_dir.parent / paths.ARTIFACTS) as scratch:
        rows = read_corpus(corpus, root, scratch)
        key = "turns" if corpus.dialogue else corpus.languages[0]
        train = split_masks(rows, key, corpus.split, corpus.seed, f"conf/corpora/{corpus.name}.yaml")["train"]
        if corpus.dialogue:
            turns = pc.list_value_length(rows.column("turns")).to_numpy(zero_copy_only=False)
            return int(np.clip(turns[train] - 1, 0, None).sum())
        return int(train.sum())


def size_task(
    name: str,
    kind: str,
    corpus: CorpusCfg,
    task: dict[str, Any],
    experiments: dict[str, dict[str, Any]],
    conf_dir: Path = CONF_DIR,
    data_dir: Path = paths.DATA,
) -> list[str]:
    """Apply the rule for the corpus's training pairs to a new task's record and its experiments' values (in
    place, nothing written); what it did, as lines to print. A `ConfigError` names the rule that is wrong."""
    recipes = load_recipes(conf_dir)
    if recipes is None or kind not in recipes.kinds:
        return [f"recipe: no rule for {kind} tasks ({recipes_file(conf_dir)}): the templates' sizes"]
    pairs = training_pairs(corpus, data_dir)
    if pairs is None:
        return [
            (
                f"recipe: {data_dir / corpus.name} is not here yet (`seqforge fetch`), so its size is unknown: the "
                "templates' sizes; add the task again once the corpus is fetched to size it"
            )
        ]
    index, rule = rule_for(recipes, kind, pairs)
    changes = apply_rule(rule, task, experiments)
    where = rule_text(index, rule, conf_dir)
    try:
        validate(task_schema(), {"name": name, **task}, f"task {name}")
        for exp_name, values in experiments.items():
            validate(experiment_schema(), {"name": exp_name, "task": name, **values}, f"experiment {exp_name}")
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}") from None
    what = ", ".join(changes) or "the templates' sizes"
    return [f"recipe: {pairs:,} training pairs -> {where}: {what}"]
