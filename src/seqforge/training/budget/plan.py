"""A training run's plan, made before the minutes are spent: how many optimizer updates, how often to
evaluate, and how long that takes on this machine.

The budget comes in one of three units (`TrainCfg.plan_unit`): a wall-clock time (`budget: 20m`: the
updates follow from the measured step rate, `seqforge.training.budget.rate`), a number of updates (`updates`),
or, as an explicit override, a number of epochs (`max_epochs`, evaluated at each epoch's end). Time and
update plans are evaluated `evaluations` times, evenly spaced, whatever the corpus size; the linear
schedule ends at the last planned update, and early stopping and checkpoint selection count evaluations.
A time-budget run re-plans as it goes, from the wall time its evaluation intervals take
(`seqforge.training.worker.budget_keeper`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from seqforge.config.shared import TrainCfg
from seqforge.core import paths
from seqforge.core.durations import clock, duration_seconds, guard_seconds
from seqforge.data.tokenizer import SubwordTokenizer
from seqforge.training.budget.cluster import placed
from seqforge.training.budget.rate import Rate, measured, probe, rate_key

STARTUP_S = 20.0  # Ray workers, data shipping and the first checkpoint: seconds a run spends outside updates


class PlanError(ValueError):
    """A budget that cannot make a plan (too small for its evaluations); the message names the key."""


@dataclass(frozen=True)
class Plan:
    experiment: str
    unit: str  # budget | updates | max_epochs (TrainCfg.plan_unit)
    setting: str  # the unit's value as configured: `20m`, `6000`, `5`
    pairs: int  # training pairs (dialogue turns for chat tasks)
    tokens: int  # training tokens, source + target
    updates_per_epoch: int
    updates: int
    eval_every: int | None  # updates between evaluations; None: at each epoch's end
    evaluations: int
    seconds_per_update: float
    seconds_per_eval: float
    rate_source: str
    guard_s: float | None  # the wall-clock guard (`TrainCfg.guard`)

    @property
    def epochs(self) -> float:
        return self.updates / self.updates_per_epoch

    @property
    def max_epochs(self) -> int:
        """Lightning's epoch cap: the epochs the planned updates start."""
        return math.ceil(self.epochs)

    @property
    def estimated_s(self) -> float:
        return STARTUP_S + self.updates * self.seconds_per_update + self.evaluations * self.seconds_per_eval

    def guard_cut(self) -> float | None:
        """The share of the plan done when the guard stops the run, if it stops it before the end."""
        if self.guard_s is None or self.estimated_s <= self.guard_s:
            return None
        return max(self.guard_s - STARTUP_S, 0) / (self.estimated_s - STARTUP_S)

    def worker_view(self) -> dict:
        """What the Ray Train workers need of it (`train_worker`); `budget_s`: the training seconds a time
        budget leaves after start-up, which the run keeps to (`seqforge.training.worker.budget_keeper`)."""
        budget_s = duration_seconds(self.setting) - STARTUP_S if self.unit == "budget" else None
        return {
            "updates": self.updates,
            "eval_every": self.eval_every,
            "max_epochs": self.max_epochs,
            "budget_s": budget_s,
        }

    def as_dict(self) -> dict:
        return asdict(self)

    def lines(self) -> list[str]:
        """The plan as a person reads it before training."""
        every = f"every {self.eval_every:,} updates" if self.eval_every else "at each epoch's end"
        lines = [
            (
                f"{self.experiment}: plan from {self.unit} {self.setting}: {self.updates:,} updates "
                f"= {self.epochs:.1f} epochs of {self.updates_per_epoch:,} updates ({self.pairs:,} training pairs, "
                f"{self.tokens:,} tokens); {self.evaluations} evaluations, {every}"
            ),
            (
                f"{self.experiment}: estimated {clock(self.estimated_s)} at {self.seconds_per_update:.3f} s/update "
                f"and {self.seconds_per_eval:.1f} s/evaluation ({self.rate_source})"
            ),
        ]
        cut = self.guard_cut()
        if cut is not None:
            lines.append(
                f"{self.experiment}: the time guard ({clock(self.guard_s)}) will stop it after about "
                f"{cut:.0%} of the plan: raise train.max_time or lower the budget"
            )
        return lines


def make_plan(experiment: str, cfg: TrainCfg, updates_per_epoch: int, pairs: int, tokens: int, rate: Rate) -> Plan:
    """The plan for `cfg`'s budget on a corpus of `updates_per_epoch` (per worker) at `rate`."""
    unit = cfg.plan_unit
    setting = str(getattr(cfg, unit))
    evaluations, eval_every = cfg.evaluations, None
    if unit == "max_epochs":
        updates, evaluations = cfg.max_epochs * updates_per_epoch, cfg.max_epochs
    else:
        if unit == "updates":
            wanted = cfg.updates
        else:
            usable = duration_seconds(cfg.budget) - STARTUP_S - evaluations * rate.seconds_per_eval
            wanted = math.floor(usable / rate.seconds_per_update) if usable > 0 else 0
        if wanted < evaluations:
            need = STARTUP_S + evaluations * (rate.seconds_per_eval + rate.seconds_per_update)
            raise PlanError(
                f"train.{unit}: {setting} gives {max(wanted, 0)} updates, too few for {evaluations} evaluations"
                + (
                    f" (at {rate.seconds_per_update:.3f} s/update and {rate.seconds_per_eval:.1f} s/evaluation it "
                    f"needs "
                    f"at least {math.ceil(need)}s)"
                    if unit == "budget"
                    else ""
                )
                + "; raise it or lower train.evaluations"
            )
        eval_every = wanted // evaluations
        updates = eval_every * evaluations
    return Plan(
        experiment,
        unit,
        setting,
        pairs,
        tokens,
        updates_per_epoch,
        updates,
        eval_every,
        evaluations,
        rate.seconds_per_update,
        rate.seconds_per_eval,
        rate.source,
        guard_seconds(cfg.guard()),
    )


def still_improving(points: list[tuple[int, float]], mode: str, share: float, tail: float = 0.2) -> str | None:
    """Whether a run ended while its validation metric was still improving fast: the best value of the
    last `tail` of its updates beat the best before by more than `share` of it. `points`: (update, value)
    per evaluation. Returns the figures in words, or None."""
    if len(points) < 3:
        return None
    points = sorted(points)
    cut = points[-1][0] * (1 - tail)
    before = [v for u, v in points if u <= cut]
    if not before:
        return None
    best = max if mode == "max" else min
    then, now = best(before), best(v for _, v in points)
    gain = (now - then) if mode == "max" else (then - now)
    if gain <= share * abs(then):
        return None
    return f"{then:.4g} → {now:.4g} ({gain / abs(then):+.1%}) over the last {tail:.0%} of its {points[-1][0]:,} updates"


def plan_experiment(exp, task, cfg: TrainCfg) -> Plan:
    """Experiment `exp`'s plan on its task's tokenized training split, at this machine's measured rate
    (`seqforge.training.budget.rate`). A `PlanError` when the task is not tokenized yet."""
    from datasets import load_from_disk

    from seqforge.data.datasets import TokenizedSplit, updates_per_epoch
    from seqforge.tasks.registry import task_kind
    from seqforge.training.worker.module import Seq2SeqModule

    cfg = placed(cfg)
    data_dir = paths.tokenized_dir(exp.task)
    if not (data_dir / "dataset_dict.json").is_file():
        raise PlanError(
            f"task {exp.task}: not tokenized yet ({data_dir} is missing): run `dvc repro tokenize@{exp.task}` first"
        )
    splits = load_from_disk(str(data_dir))
    train_set, val_set = TokenizedSplit(splits["train"]), TokenizedSplit(splits["validation"])
    tokenizer = SubwordTokenizer.load(paths.tokenizer_file(exp.task))
    vocab = (tokenizer.vocab_size("source"), tokenizer.vocab_size("target"))

    def timed() -> tuple[float, float]:
        module = Seq2SeqModule(
            exp.model_dump(mode="json"),
            *vocab,
            tokenizer.dumps(),
            task.kind,
            task_kind(task.kind).validation_bleu(task),
        )
        return probe(module, train_set, val_set, cfg)

    return make_plan(
        exp.name,
        cfg,
        updates_per_epoch(train_set.lengths, cfg),
        len(train_set),
        int(train_set.lengths.sum()),
        measured(rate_key(exp, cfg, vocab, task.kind), timed),
    )
