"""Training plans: budgets in time or updates become updates, evaluations and a schedule end for any
corpus size; bad budgets are one line naming the key or flag; a run still improving at its end is told."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from seqforge.catalog import CatalogError
from seqforge.catalog.tasks import add_task
from seqforge.config.base import ConfigError, validate
from seqforge.config.shared import TrainCfg, load_config
from seqforge.data.datasets import updates_per_epoch
from seqforge.experiments.config import load_experiment
from seqforge.training.budget.plan import STARTUP_S, PlanError, Rate, make_plan, still_improving
from seqforge.training.worker.schedule import step_schedule

RATE = Rate(seconds_per_update=0.5, seconds_per_eval=10.0, source="test")


def corpus(pairs: int, seed: int = 0) -> np.ndarray:
    """Token lengths (source, target) of `pairs` sentence pairs, Multi30k-like (about 15 tokens a side)."""
    rng = np.random.default_rng(seed)
    src = rng.integers(5, 30, size=pairs)
    return np.stack([src, np.maximum(3, src + rng.integers(-4, 5, size=pairs))], axis=1).astype(np.int32)


def train(**values) -> TrainCfg:
    return TrainCfg.model_validate({"batch_tokens": 2000, "num_workers": 2, **values})


@pytest.mark.parametrize("pairs", [3_000, 29_000, 200_000])
def test_a_time_budget_buys_the_same_evaluations_and_time_at_any_corpus_size(pairs: int) -> None:
    lengths = corpus(pairs)
    cfg = train(budget="15m")
    per_epoch = updates_per_epoch(lengths, cfg)
    plan = make_plan("gru", cfg, per_epoch, pairs, int(lengths.sum()), RATE)
    # every worker takes about half the tokens: an epoch is total tokens / (2 workers × 2,000 a batch), padded
    assert lengths.sum() / 4000 <= per_epoch <= 1.3 * lengths.sum() / 4000
    assert plan.evaluations == 8 and plan.updates == 8 * plan.eval_every
    assert plan.updates == (15 * 60 - STARTUP_S - 8 * RATE.seconds_per_eval) // RATE.seconds_per_update // 8 * 8
    assert 15 * 60 - RATE.seconds_per_update * 8 <= plan.estimated_s <= 15 * 60  # fits the budget
    assert plan.epochs == pytest.approx(plan.updates / per_epoch)
    assert plan.max_epochs == -(-plan.updates // per_epoch) and plan.guard_cut() is None  # guard: 1.5 × budget
    schedule = step_schedule("linear", 100, plan.updates)  # the linear schedule ends at the last planned update
    assert schedule(plan.updates - 2) > 0 and schedule(plan.updates) == 0


def test_a_huge_corpus_gets_a_plan_that_fits_its_budget_not_days() -> None:
    cfg = train(budget="30m")
    per_epoch = updates_per_epoch(corpus(2_000_000), cfg)
    plan = make_plan("gru", cfg, per_epoch, 2_000_000, 0, RATE)
    assert plan.epochs < 0.5 and plan.evaluations >= 4 and plan.estimated_s <= 30 * 60
    assert plan.eval_every < per_epoch  # evaluated within the first epoch, not at its (distant) end


def test_updates_and_epochs_plans() -> None:
    lengths = corpus(3_000)
    per_epoch = updates_per_epoch(lengths, train(budget="1m"))
    by_updates = make_plan("gru", train(updates=1000, evaluations=5), per_epoch, 3000, 0, RATE)
    assert (by_updates.updates, by_updates.eval_every) == (1000, 200)
    assert by_updates.estimated_s == STARTUP_S + 1000 * 0.5 + 5 * 10
    by_epochs = make_plan("gru", train(max_epochs=5, budget="1m"), per_epoch, 3000, 0, RATE)  # epochs override
    assert (by_epochs.updates, by_epochs.eval_every, by_epochs.evaluations) == (5 * per_epoch, None, 5)
    guarded = make_plan("gru", train(updates=4000, max_time="00:00:10:00"), per_epoch, 3000, 0, RATE)
    assert guarded.guard_cut() == pytest.approx((600 - STARTUP_S) / (4000 * 0.5 + 80))
    assert any("time guard" in line and "raise train.max_time" in line for line in guarded.lines())


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"budget": "20 minutes"}, "'20 minutes' is not a duration: write hours, minutes and seconds like 20m"),
        ({"budget": "-5m"}, "'-5m' is not a duration"),
        ({"budget": "0m"}, "'0m': a budget must be longer than zero"),
        ({"updates": 0}, "updates: Input should be greater than or equal to 1"),
    ],
)
def test_a_malformed_budget_names_the_key(conf_copy: Path, values: dict, message: str) -> None:
    path = conf_copy / "experiments" / "gru_bahdanau.yaml"
    data = yaml.safe_load(path.read_text())
    path.write_text(yaml.safe_dump({**data, "train": values}))
    with pytest.raises(ConfigError) as err:
        load_experiment("gru_bahdanau", conf_copy).train_config(load_config(conf_copy).train)
    assert "experiment gru_bahdanau: train" in str(err.value) and message in str(err.value)
    assert next(iter(values)) in str(err.value)


def test_a_budget_too_small_for_its_evaluations_is_one_line() -> None:
    with pytest.raises(PlanError) as err:
        make_plan("gru", train(budget="1m"), 100, 3000, 0, RATE)
    assert str(err.value).startswith("train.budget: 1m gives 0 updates, too few for 8 evaluations")
    assert "it needs at least 104s" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(PlanError, match="train.updates: 5 gives 5 updates, too few for 8 evaluations"):
        make_plan("gru", train(updates=5), 100, 3000, 0, RATE)


def test_the_most_specific_layer_sets_the_unit(conf_copy: Path) -> None:
    """An experiment's `updates` beats the global budget; a profile's family budget beats the experiment's
    updates; within one layer, explicit epochs win."""
    from seqforge.config.base import set_profile

    path = conf_copy / "experiments" / "gru_bahdanau.yaml"
    data = yaml.safe_load(path.read_text())
    path.write_text(yaml.safe_dump({**data, "train": {"updates": 5000}}))
    base = load_config(conf_copy).train
    assert base.plan_unit == "budget"
    cfg = load_experiment("gru_bahdanau", conf_copy).train_config(base)
    assert (cfg.plan_unit, cfg.updates, cfg.budget) == ("updates", 5000, None)
    profile = conf_copy / "profiles" / "mine.yaml"
    profile.write_text(yaml.safe_dump({"families": {"rnn": {"train": {"budget": "5m"}}}}))
    set_profile("mine", conf_copy)
    cfg = load_experiment("gru_bahdanau", conf_copy).train_config(load_config(conf_copy).train)
    assert (cfg.plan_unit, cfg.budget, cfg.updates) == ("budget", "5m", None)
    assert validate(TrainCfg, {"budget": "5m", "max_epochs": 3}, "x").plan_unit == "max_epochs"


def test_still_improving_fires_on_a_rising_curve_not_a_flat_one() -> None:
    rising = [(u, 10 + 2 * i) for i, u in enumerate(range(100, 1001, 100))]  # BLEU 10 -> 28, +2 per evaluation
    message = still_improving(rising, "max", 0.05)
    assert message is not None and message.startswith("24 → 28 (+16.7%) over the last 20% of its 1,000 updates")
    flat = [(u, 20 + (0.1 if i % 2 else 0)) for i, u in enumerate(range(100, 1001, 100))]
    assert still_improving(flat, "max", 0.05) is None
    falling_loss = [(u, 5.0 - 0.3 * i) for i, u in enumerate(range(100, 1001, 100))]
    assert still_improving(falling_loss, "min", 0.05) is not None  # chat: validation loss still falling
    assert still_improving([(u, 3.0) for u in range(100, 1001, 100)], "min", 0.05) is None
    assert still_improving(rising[:2], "max", 0.05) is None  # too few evaluations to say


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"budget": "20 minutes"}, "--budget: '20 minutes' is not a duration"),
        ({"budget": "-5m"}, "--budget: '-5m' is not a duration"),
        ({"budget": "20m", "updates": 5000}, "--budget and --updates: give one"),
        ({"updates": 0}, "--updates: 0 is not a number of updates"),
    ],
)
def test_task_add_refuses_a_bad_budget_and_writes_nothing(project: Path, options: dict, message: str) -> None:
    before = sorted(p.name for p in (project / "conf").rglob("*"))
    with pytest.raises(CatalogError, match=message.replace("(", r"\(")):
        add_task("mc", "translation", "multi30k", "en", "de", conf_dir=Path("conf"), **options)
    assert sorted(p.name for p in (project / "conf").rglob("*")) == before


def test_task_add_budget_replaces_the_templates_budget(project: Path) -> None:
    add_task(
        "mc", "translation", "multi30k", "de", "en", "gru_bahdanau,transformer", conf_dir=Path("conf"), budget="12m"
    )
    for template in ("gru_bahdanau", "transformer"):
        exp = load_experiment(f"mc_{template}", Path("conf"))
        assert exp.train == {"budget": "12m"}
    add_task("mu", "translation", "multi30k", "de", "en", "gru_bahdanau", conf_dir=Path("conf"), updates=3000)
    assert load_experiment("mu_gru_bahdanau", Path("conf")).train == {"updates": 3000}
    add_task("md", "translation", "multi30k", "de", "en", "transformer", conf_dir=Path("conf"))
    exp = load_experiment("md_transformer", Path("conf"))  # not the template's 33m: the project's default
    assert exp.train == {} and exp.train_config(load_config(Path("conf")).train).budget == "15m"


def test_a_plan_needs_the_task_tokenized(project: Path) -> None:
    from seqforge.tasks.registry import load_task
    from seqforge.training.budget.plan import plan_experiment

    exp = load_experiment("gru_bahdanau", Path("conf"))
    with pytest.raises(PlanError) as err:
        plan_experiment(exp, load_task("translation", Path("conf")), exp.train_config(load_config(Path("conf")).train))
    assert str(err.value) == (
        "task translation: not tokenized yet (artifacts/tokenized/translation is missing): "
        "run `dvc repro tokenize@translation` first"
    )
