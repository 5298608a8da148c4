"""Sections every task and experiment shares: tokenizer, train, decode, optimiser, evaluate, serve, MLflow, and
`conf/config.yaml` itself with the active profile's overlay."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BeforeValidator, Field, model_validator
from pydantic_core import PydanticCustomError

from seqforge.config.base import CONF_DIR, Strict, merge, profile_overlay, read_yaml, validate
from seqforge.core.durations import duration_seconds


class TokenizerCfg(Strict):
    library: Literal["tokenizers", "sentencepiece"] = "tokenizers"  # Hugging Face tokenizers, or sentencepiece (CJK)
    model: Literal["bpe", "unigram"] = "bpe"  # the subword model
    vocab_size: int = Field(8000, ge=100)  # subword vocabulary size (per side unless joint)
    joint: bool = True  # one vocabulary for source and target (needed by shared embeddings)
    min_frequency: int = Field(2, ge=1)  # tokenizers only
    character_coverage: float = Field(1.0, gt=0.0, le=1.0)  # sentencepiece: 1.0 keeps every character (CJK)
    byte_fallback: bool = True  # sentencepiece: unseen characters become UTF-8 bytes, never <unk>
    max_train_sentences: int = Field(1_000_000, ge=100)  # sentences sampled (seeded) to train the model


def _duration(text: str) -> str:
    duration_seconds(text)
    return text


Duration = Annotated[str, AfterValidator(_duration)]


def _count_or_auto(value: object) -> object:
    if value == "auto" or (type(value) is int and value >= 1):
        return value
    raise PydanticCustomError("count_or_auto", "a whole number ≥ 1, or auto")


CountOrAuto = Annotated[int | Literal["auto"], BeforeValidator(_count_or_auto)]
LEGACY_PRECISION = {"32-true": "fp32", "32": "fp32"}  # Lightning's names, which configs used before `auto`
PLAN_KEYS = ("max_epochs", "updates", "budget")  # the units a training plan is given in, first set wins


class TrainCfg(Strict):
    num_workers: CountOrAuto = "auto"  # Ray Train workers, data-parallel (auto: one per node, or per GPU)
    use_gpu: bool = False  # each worker takes one GPU
    cpus_per_worker: CountOrAuto = "auto"  # CPUs Ray gives each worker, and its torch threads (auto: with
    # num_workers auto, its node's CPUs, shared among the node's GPUs; else 1)
    precision: Annotated[
        Literal["auto", "fp32", "bf16-mixed", "16-mixed"], BeforeValidator(lambda v: LEGACY_PRECISION.get(v, v))
    ] = "auto"  # auto: bf16-mixed where the CPU or GPU computes bf16 natively, else fp32
    compile: bool = False  # torch.compile the training forward (off: slower on CPU for every family)
    max_epochs: int | None = Field(None, ge=1)  # epochs to train for, each evaluated at its end (of max_epochs,
    # updates and budget, the first set sizes the run)
    updates: int | None = Field(None, ge=1)  # optimizer updates to train for, evaluated `evaluations` times
    budget: Duration | None = "15m"  # training time on this machine: the plan turns it into updates at its
    # measured step rate, evaluated `evaluations` times
    evaluations: int = Field(8, ge=1)  # validations (each with a scored checkpoint) over an updates or time plan
    max_time: str | None = Field(None, pattern=r"^\d\d:\d\d:\d\d:\d\d$")  # a guard, not the budget
    # (null: 1.5 × budget for a time budget, none otherwise)
    undertrained_share: float = Field(0.05, gt=0)  # warn when the last 20 % of updates gained more than this
    # share of the validation metric (seqforge.training.budget.plan.still_improving)
    batch_tokens: int = Field(6000, ge=64)  # tokens (source + target, padding included) per batch and worker
    pad_to_multiple: CountOrAuto = "auto"  # batch widths rounded up to this, pairs bucketed by them: few batch
    # shapes, so GPU kernels and attention graphs are reused (auto: 8 with use_gpu, else 1: no extra padding)
    accumulate_grad_batches: int = Field(
        1, ge=1
    )  # batches per update: the effective batch is this × batch_tokens × workers
    early_stopping_patience: int = Field(4, ge=1)  # evaluations without improvement
    eval_bleu_sentences: int | None = Field(None, ge=1)  # in-training validation BLEU on this fixed sample of the
    # validation split, so an evaluation costs less than the training between two (the loss: all of it; null: all)
    seed: int = 1234  # seeds weights, dropout and batch order
    log_every_n_steps: int = Field(25, ge=1)  # updates between training-loss metrics
    storage_path: str = "runs/ray"  # Ray Train checkpoints (a path or URI; $SEQFORGE_RAY_STORAGE overrides)
    num_checkpoints: int = Field(2, ge=1)  # best checkpoints Ray keeps, by the validation metric
    checkpoint_every_n_steps: int | None = Field(None, ge=1)  # resume points between evaluations (not in sweeps)
    average_checkpoints: Literal["auto", "always", "never"] = "auto"  # export the mean of the kept checkpoints
    # (auto: only when it scores better than the best one on the validation metric)
    max_failures: int = Field(1, ge=-1)  # worker-failure restarts from the last checkpoint; -1: no limit
    checkpoint_retries: int = Field(4, ge=0)  # waits for unreachable checkpoint storage: 1 s, 2 s, 4 s, ...

    def pad_multiple(self) -> int:
        """`pad_to_multiple` resolved: 8 on GPUs, 1 (no rounding) on CPUs, unless set."""
        if self.pad_to_multiple == "auto":
            return 8 if self.use_gpu else 1
        return self.pad_to_multiple

    def guard(self) -> str | None:
        """The wall-clock guard Lightning stops at (`DD:HH:MM:SS`): `max_time`, else 1.5 × a time budget."""
        if self.max_time or self.plan_unit != "budget":
            return self.max_time
        minutes, seconds = divmod(int(1.5 * duration_seconds(self.budget)), 60)
        return f"{minutes // 1440:02d}:{minutes // 60 % 24:02d}:{minutes % 60:02d}:{seconds:02d}"

    @property
    def plan_unit(self) -> str:
        """Which of `PLAN_KEYS` sizes the run."""
        return next(key for key in PLAN_KEYS if getattr(self, key) is not None)


def layered_train(*layers: dict) -> dict:
    """Train settings overlaid in order (global, experiment, sweep, ...): a layer that sets a plan unit
    (`PLAN_KEYS`) replaces the units of the layers below, so an experiment's `updates: 5000` is not
    outranked by the global `budget` or `max_epochs`."""
    merged: dict = {}
    for layer in layers:
        if any(layer.get(key) is not None for key in PLAN_KEYS):
            merged |= dict.fromkeys(PLAN_KEYS)  # None, not absent: no default comes back
        merged |= layer
    return merged


class DecodeCfg(Strict):
    """How hypotheses are searched: beam search (beam 1 = greedy) or top-k/top-p sampling."""

    strategy: Literal["beam", "sample"] = "beam"  # beam search (beam_size 1: greedy) or sampling
    beam_size: int = Field(5, ge=1)  # hypotheses kept per sentence
    length_penalty: float = Field(1.0, ge=0.0)  # GNMT alpha; 0 disables
    patience: float = Field(1.0, gt=0.0)  # beam: a sentence ends once round(beam_size * patience) hypotheses have
    # finished (Kasai et al., 2022; CTranslate2's `patience`); 1 is the fastest
    no_repeat_ngram: int = Field(0, ge=0)  # never repeat an n-gram of this size; 0 disables
    min_length: int = Field(0, ge=0)  # tokens generated before EOS is allowed
    top_k: int = Field(0, ge=0)  # sampling: keep the k most likely tokens; 0 keeps all
    top_p: float = Field(1.0, gt=0.0, le=1.0)  # sampling: nucleus mass
    temperature: float = Field(1.0, gt=0.0)  # sampling: logits divided by this
    seed: int = 0  # sampling: the same seed gives the same outputs
    max_len_ratio: float = Field(1.5, ge=0)  # output length <= ratio * source length + offset
    max_len_offset: int = Field(10, ge=1)  # see max_len_ratio
    n_best: int = Field(1, ge=1)  # hypotheses returned per sentence (beam only)
    batch_size: int = Field(64, ge=1)  # sentences decoded together
    device: Literal["auto", "cpu", "cuda"] = "auto"  # auto: the GPU when there is one
    precision: Literal["32", "bf16"] = "32"  # bf16: half the memory traffic (meant for GPUs)

    @model_validator(mode="after")
    def _n_best_fits(self) -> DecodeCfg:
        if self.n_best > self.beam_size:
            raise ValueError(f"n_best ({self.n_best}) cannot exceed beam_size ({self.beam_size})")
        if self.strategy == "sample" and self.n_best != 1:
            raise ValueError("sampling returns one hypothesis: n_best must be 1")
        return self


class OptimCfg(Strict):
    optimizer: Literal["adamw", "sgd"] = "adamw"  # sgd: plain (momentum 0 unless set), the classic RNN recipe
    lr: float = Field(1e-3, gt=0)  # peak learning rate
    momentum: float = Field(0.0, ge=0.0, lt=1.0)  # sgd only
    weight_decay: float = Field(0.0, ge=0)  # AdamW decay of weight matrices (never norms, biases, embeddings)
    betas: tuple[float, float] = (0.9, 0.98)  # AdamW moment decays
    schedule: Literal["inverse_sqrt", "linear", "plateau"] = "inverse_sqrt"  # linear: warm-up, then down
    # to zero at the run's last planned update (seqforge.training.budget.plan)
    warmup_steps: int = Field(500, ge=0)  # updates of linear warm-up to the peak rate
    plateau_factor: float = Field(0.5, gt=0, lt=1)  # plateau: the learning rate is multiplied by this
    plateau_patience: int = Field(1, ge=0)  # plateau: evaluations without improvement before it drops
    label_smoothing: float = Field(0.1, ge=0.0, lt=1.0)  # of the cross-entropy targets
    clip_norm: float | None = Field(1.0, gt=0)  # global gradient-norm cap; null: never clipped (norms still logged)


class EvaluateCfg(Strict):
    num_samples: int = Field(25, ge=0)  # sample outputs written to reports/ and MLflow
    attention_samples: int = Field(4, ge=0)  # first test pairs drawn as attention heatmaps


class ServeCfg(Strict):
    """Request limits a registered model enforces when served (violations get HTTP 400), and how `seqforge serve
    --engine ray` batches and places it (read from `conf/` when the server starts)."""

    max_batch: int = Field(64, ge=1)  # rows per request
    max_chars: int = Field(1000, ge=1)  # characters per sentence or conversation turn (a cheap first gate)
    max_tokens: int = Field(256, ge=1)  # subword tokens per model input after tokenisation (chat: the context)
    max_turns: int = Field(20, ge=1)  # chatbot: turns per conversation
    max_batch_size: int = Field(32, ge=1)  # --engine ray: requests a replica decodes together at most
    batch_wait_ms: float = Field(10.0, ge=0)  # --engine ray: how long a batch waits for more requests
    replicas: int = Field(2, ge=1)  # --engine ray: copies of the model on the cluster (with max_replicas: the least)
    max_replicas: int | None = Field(None, ge=1)  # --engine ray: autoscale from `replicas` up to this many
    cpus_per_replica: float = Field(1.0, gt=0)  # --engine ray: CPUs of a replica (its torch threads: at least 1)
    follow_every_s: float = Field(10.0, gt=0)  # --follow-alias: how often the registry is asked where the alias is

    @model_validator(mode="after")
    def _bounds_in_order(self) -> ServeCfg:
        if self.max_replicas is not None and self.max_replicas < self.replicas:
            raise ValueError(f"max_replicas ({self.max_replicas}) is below replicas ({self.replicas})")
        return self


class MlflowCfg(Strict):
    experiment: str = "seqforge"  # the MLflow experiment every run goes to
    registry_alias: str = "challenger"  # the alias `register` moves to each new version


class Config(Strict):
    """`conf/config.yaml`: what every task and experiment shares, with the profile's overlay."""

    profile: str = "default"  # the active profile (`seqforge profile NAME`): conf/profiles/<profile>.yaml
    train: TrainCfg = TrainCfg()
    evaluate: EvaluateCfg = EvaluateCfg()
    serve: ServeCfg = ServeCfg()
    mlflow: MlflowCfg = MlflowCfg()


def load_config(conf_dir: Path = CONF_DIR) -> Config:
    """The shared configuration with the active profile's overlay applied."""
    raw = read_yaml(conf_dir / "config.yaml")
    overlay = {
        k: v
        for k, v in profile_overlay(str(raw.get("profile", "default")), conf_dir).items()
        if k in Config.model_fields
    }
    sources = f"{conf_dir / 'config.yaml'} (profile {raw.get('profile', 'default')!r})"
    return validate(Config, merge(raw, overlay), sources)
