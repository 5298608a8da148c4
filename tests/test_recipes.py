"""conf/recipes.yaml: `task add` sizes a new task's vocabulary and models from its corpus's training pairs,
says so, and a bad rule is one clear error that writes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from helpers import ROOT
from seqforge.catalog import CatalogError
from seqforge.catalog.corpora import add_corpus
from seqforge.catalog.tasks import add_task
from seqforge.experiments.config import load_experiment
from seqforge.experiments.recipes import load_recipes, rule_for
from seqforge.tasks.registry import load_task

RULES = {
    "kinds": {
        "translation": [
            {"up_to": 30, "tokenizer": {"vocab_size": 500}, "families": {"rnn": {"dropout": 0.45}}},
            {"up_to": None, "tokenizer": {"vocab_size": 900}},
        ]
    }
}


def corpus(project: Path, name: str, pairs: int) -> str:
    """A TSV corpus of `pairs` + 10 pairs (5 validation and 5 test held out)."""
    source = project / f"{name}.tsv"
    source.write_text("".join(f"a small house {i} .\tein kleines Haus {i} .\n" for i in range(pairs + 10)))
    add_corpus(
        name,
        "tsv",
        [str(source)],
        columns={"en": 0, "de": 1},
        split={"validation": 5, "test": 5},
        conf_dir=Path("conf"),
        data_dir=Path("data"),
    )
    return name


def test_the_shipped_rules_cover_every_corpus_size() -> None:
    recipes = load_recipes(ROOT / "conf")
    assert recipes is not None and "translation" in recipes.kinds
    for kind, rules in recipes.kinds.items():
        for pairs in (1, *(r.up_to for r in rules[:-1]), 10**9):
            index, rule = rule_for(recipes, kind, pairs)
            assert rule.up_to is None or pairs <= rule.up_to
            assert index == 0 or rules[index - 1].up_to < pairs


def test_task_add_writes_the_rule_for_the_corpus_size_and_says_which(project: Path) -> None:
    (project / "conf" / "recipes.yaml").write_text(yaml.safe_dump(RULES))
    _, sized = add_task(
        "small",
        "translation",
        corpus(project, "c30", 30),
        "en",
        "de",
        "gru_bahdanau,transformer",
        conf_dir=Path("conf"),
    )
    assert sized == [
        (
            "recipe: 30 training pairs -> conf/recipes.yaml rule 1 (up to 30 pairs): tokenizer.vocab_size "
            "500, small_gru_bahdanau model.dropout 0.45"
        )
    ]
    assert load_task("small", Path("conf")).tokenizer.vocab_size == 500
    assert load_experiment("small_gru_bahdanau", Path("conf")).model.dropout == 0.45
    transformer = yaml.safe_load((ROOT / "conf" / "experiments" / "transformer.yaml").read_text())["model"]
    assert load_experiment("small_transformer", Path("conf")).model.dropout == transformer["dropout"]

    _, sized = add_task(
        "larger", "translation", corpus(project, "c31", 31), "en", "de", "gru_bahdanau", conf_dir=Path("conf")
    )
    assert sized == [
        ("recipe: 31 training pairs -> conf/recipes.yaml rule 2 (any larger corpus): tokenizer.vocab_size 900")
    ]
    template = yaml.safe_load((ROOT / "conf" / "experiments" / "gru_bahdanau.yaml").read_text())["model"]
    assert load_experiment("larger_gru_bahdanau", Path("conf")).model.dropout == template["dropout"]


def test_a_corpus_not_fetched_yet_keeps_the_templates_sizes_and_says_why(project: Path) -> None:
    _, sized = add_task("mc", "translation", "multi30k", "en", "de", "gru_bahdanau", conf_dir=Path("conf"))
    assert sized[0].startswith("recipe: data/multi30k is not here yet (`seqforge fetch`)")


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ({"kinds": {"translation": [{"up_to": None}, {"up_to": 10}]}}, "kinds.translation: give rules in increasing"),
        (
            {"kinds": {"translation": [{"up_to": None, "tokenizer": {"vocab_sise": 10}}]}},
            "tokenizer: unknown key(s) vocab_sise",
        ),
        (
            {"kinds": {"translation": [{"up_to": None, "families": {"rnn": {"dropout": 2.0}}}]}},
            "conf/recipes.yaml rule 1 (any larger corpus): experiment bad_gru_bahdanau: invalid configuration\n  "
            "model.dropout",
        ),
        (
            {"kinds": {"translation": [{"up_to": None, "tokenizer": {"vocab_size": 5}}]}},
            "conf/recipes.yaml rule 1 (any larger corpus): task bad: invalid configuration\n  tokenizer.vocab_size",
        ),
    ],
)
def test_a_bad_rule_names_the_file_and_key_and_writes_nothing(project: Path, rules: dict, message: str) -> None:
    name = corpus(project, "c40", 40)
    (project / "conf" / "recipes.yaml").write_text(yaml.safe_dump(rules))
    before = sorted(p.name for p in (project / "conf").rglob("*"))
    with pytest.raises(CatalogError) as err:
        add_task("bad", "translation", name, "en", "de", "gru_bahdanau", conf_dir=Path("conf"))
    assert message in str(err.value) and "conf/recipes.yaml" in str(err.value)
    assert sorted(p.name for p in (project / "conf").rglob("*")) == before
