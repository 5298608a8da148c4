"""Validated configuration: `conf/config.yaml` + `conf/experiments/<name>.yaml` + a profile overlay.

Every stage calls :func:`load_config` (or :func:`load_experiment`) and gets typed, validated
objects; a wrong value fails here with the file and the dotted key that is wrong.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator, model_validator

CONF_DIR = Path("conf")
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]*$"  # corpus, task and experiment names (file stems, DVC keys)
LANG_PATTERN = r"^[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})*$"  # ISO 639 code, optional script/region: ko, zh-Hans
Lang = Annotated[str, Field(pattern=LANG_PATTERN)]
Name = Annotated[str, Field(pattern=NAME_PATTERN)]
# Scripts written without spaces between words: lengths are counted in characters there.
UNSPACED_LANGS = frozenset({"zh", "ja", "th", "lo", "km", "my", "bo", "yue", "wuu"})


class ConfigError(ValueError):
    """A configuration file or value is invalid; the message names the file and key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def base_lang(lang: str) -> str:
    """`zh-Hans` -> `zh`: the language subtag, lowercased."""
    return re.split(r"[-_]", lang)[0].lower()


class _DataBase(_Strict):
    normalization: Literal["nfc", "nfkc"] = "nfc"  # Unicode form applied to every text (NFKC folds width variants)
    max_train_pairs: int | None = Field(None, gt=0)  # keep only the first N training pairs (smoke runs)
    max_eval_pairs: int | None = Field(None, gt=0)  # cap on validation/test pairs (smoke runs)


class TranslationData(_DataBase):
    """Which pairs `prepare` keeps."""

    max_tokens: int = Field(100, gt=0)  # drop pairs with a side longer than this (in `length_unit`)
    max_ratio: float = Field(4.0, ge=1.0)  # drop pairs whose length ratio exceeds this
    length_unit: Literal["auto", "words", "chars"] = "auto"  # auto: chars for unspaced scripts (zh, ja, th)


class ChatData(_DataBase):
    """How dialogues become (context, response) pairs."""

    context_turns: int = Field(3, ge=1)  # previous turns joined into the context
    max_context_tokens: int = Field(100, gt=0)  # oldest turns are dropped to fit
    max_response_tokens: int = Field(40, gt=0)  # longer responses are dropped


class TokenizerCfg(_Strict):
    library: Literal["tokenizers", "sentencepiece"] = "tokenizers"
    model: Literal["bpe", "unigram"] = "bpe"
    vocab_size: int = Field(8000, ge=100)
    joint: bool = True
    min_frequency: int = Field(2, ge=1)  # tokenizers only
    character_coverage: float = Field(1.0, gt=0.0, le=1.0)  # sentencepiece: 1.0 keeps every character (CJK)
    byte_fallback: bool = True  # sentencepiece: unseen characters become UTF-8 bytes, never <unk>
    max_train_sentences: int = Field(1_000_000, ge=100)  # sentences sampled (seeded) to train the model


class TrainCfg(_Strict):
    num_workers: int = Field(2, ge=1)
    use_gpu: bool = False
    cpus_per_worker: int = Field(1, ge=1)
    precision: Literal["32-true", "bf16-mixed", "16-mixed"] = "32-true"
    max_epochs: int = Field(30, ge=1)
    max_steps: int | None = Field(None, ge=1)  # optimizer updates; whichever cap comes first ends training
    # (mid-epoch too: the best checkpoints are taken at epoch ends, so size it in whole epochs)
    max_time: str | None = Field(None, pattern=r"^\d\d:\d\d:\d\d:\d\d$")  # a guard, not the budget
    batch_tokens: int = Field(6000, ge=64)
    accumulate_grad_batches: int = Field(1, ge=1)  # batches per update: the effective batch is this × batch_tokens × workers
    early_stopping_patience: int = Field(4, ge=1)
    seed: int = 1234
    log_every_n_steps: int = Field(25, ge=1)
    storage_path: str = "runs/ray"
    num_checkpoints: int = Field(2, ge=1)
    checkpoint_every_n_steps: int | None = Field(None, ge=1)  # resume points between epoch ends (not in sweeps)
    average_checkpoints: Literal["auto", "always", "never"] = "auto"  # export the mean of the kept checkpoints
    # (auto: only when it scores better than the best one on the validation metric)
    max_failures: int = Field(1, ge=-1)  # worker-failure restarts from the last checkpoint; -1: no limit
    checkpoint_retries: int = Field(4, ge=0)  # waits for unreachable checkpoint storage: 1 s, 2 s, 4 s, ...


class DecodeCfg(_Strict):
    """How hypotheses are searched: beam search (beam 1 = greedy) or top-k/top-p sampling."""

    strategy: Literal["beam", "sample"] = "beam"
    beam_size: int = Field(5, ge=1)
    length_penalty: float = Field(1.0, ge=0.0)  # GNMT alpha; 0 disables
    no_repeat_ngram: int = Field(0, ge=0)  # never repeat an n-gram of this size; 0 disables
    min_length: int = Field(0, ge=0)  # tokens generated before EOS is allowed
    top_k: int = Field(0, ge=0)  # sampling: keep the k most likely tokens; 0 keeps all
    top_p: float = Field(1.0, gt=0.0, le=1.0)  # sampling: nucleus mass
    temperature: float = Field(1.0, gt=0.0)
    seed: int = 0  # sampling: the same seed gives the same outputs
    max_len_ratio: float = Field(1.5, ge=0)  # output length <= ratio * source length + offset
    max_len_offset: int = Field(10, ge=1)
    n_best: int = Field(1, ge=1)
    batch_size: int = Field(64, ge=1)
    device: Literal["auto", "cpu", "cuda"] = "auto"  # auto: the GPU when there is one
    precision: Literal["32", "bf16"] = "32"  # bf16: half the memory traffic (meant for GPUs)

    @model_validator(mode="after")
    def _n_best_fits(self) -> DecodeCfg:
        if self.n_best > self.beam_size:
            raise ValueError(f"n_best ({self.n_best}) cannot exceed beam_size ({self.beam_size})")
        if self.strategy == "sample" and self.n_best != 1:
            raise ValueError("sampling returns one hypothesis: n_best must be 1")
        return self


class _TaskBase(_Strict):
    """What every task has: its corpus, tokenizer, and how evaluation and serving decode."""

    name: Name
    corpus: Name
    registered_name: str | None = None  # the MLflow model name; default: the task name
    tokenizer: TokenizerCfg = TokenizerCfg()
    decode: DecodeCfg = DecodeCfg()

    def model_name(self) -> str:
        return self.registered_name or self.name


class TranslationTask(_TaskBase):
    """Machine translation from `src_lang` to `tgt_lang` on a parallel corpus."""

    kind: Literal["translation"]
    src_lang: Lang
    tgt_lang: Lang
    data: TranslationData = TranslationData()
    bleu_tokenize: str = "auto"  # sacreBLEU tokenizer; auto: chosen from tgt_lang (13a, zh, ja-mecab, ko-mecab, char)

    @model_validator(mode="after")
    def _different_langs(self) -> TranslationTask:
        if self.src_lang == self.tgt_lang:
            raise ValueError("src_lang and tgt_lang must differ")
        return self


class ChatbotTask(_TaskBase):
    """Chatbot: dialogue context -> response, with the same stages and models as translation."""

    kind: Literal["chatbot"]
    lang: Lang = "en"
    data: ChatData = ChatData()

    @property
    def src_lang(self) -> str:
        return self.lang

    @property
    def tgt_lang(self) -> str:
        return self.lang


TaskCfg = Annotated[TranslationTask | ChatbotTask, Field(discriminator="kind")]
TASK_KINDS = ("translation", "chatbot")


class ArchiveCfg(_Strict):
    url: str
    sha256: str
    members: dict[str, str]  # file in data/<corpus>: path inside the archive (`!` enters a nested zip)


FORMATS = ("tsv", "csv", "jsonl", "parquet", "text_pair", "hf", "multi30k", "dailydialog")


class CorpusCfg(_Strict):
    """A raw corpus in `data/<name>/`: its format, files (SHA-256 pinned) and how to read them."""

    name: Name
    format: Literal[FORMATS]
    files: dict[str, str]  # file under data/<name>/ -> SHA-256
    languages: list[Lang] = []  # parallel corpora: the languages it holds (empty: a dialogue corpus)
    columns: dict[str, str | int] = {}  # language (or `turns`) -> column index, header name, field or file
    header: bool = False  # tsv/csv: the first row names the columns
    split: dict[Literal["validation", "test"], int] = {}  # one-file corpora: held-out sizes (unique sources)
    seed: int = 0  # the carving's seed
    source: str | None = None  # where it came from: a local path or a Hugging Face dataset (information)
    url: str | None = None  # built-in corpora: official address of each file (`{file}`)
    archive: ArchiveCfg | None = None  # built-in corpora: official archive holding the files
    hf: dict[str, Any] = {}  # hf: config name, splits read

    @property
    def dialogue(self) -> bool:
        return self.format == "dailydialog" or "turns" in self.columns


class EvaluateCfg(_Strict):
    num_samples: int = Field(25, ge=0)  # sample outputs written to reports/ and MLflow
    attention_samples: int = Field(4, ge=0)  # first test pairs drawn as attention heatmaps


class ServeCfg(_Strict):
    """Request limits a registered model enforces when served (violations get HTTP 400)."""

    max_batch: int = Field(64, ge=1)  # rows per request
    max_chars: int = Field(1000, ge=1)  # characters per sentence or conversation turn (a cheap first gate)
    max_tokens: int = Field(256, ge=1)  # subword tokens per model input after tokenisation (chat: the context)
    max_turns: int = Field(20, ge=1)  # chatbot: turns per conversation


class MlflowCfg(_Strict):
    experiment: str = "seqforge"
    registry_alias: str = "challenger"


class RNNModelCfg(_Strict):
    arch: Literal["rnn"]
    cell: Literal["rnn", "lstm", "gru"] = "gru"
    emb_dim: int = Field(256, gt=0)
    hidden_dim: int = Field(512, gt=0)
    enc_hidden_dim: int | None = Field(None, gt=0)  # encoder size per direction (None: hidden_dim); OpenNMT-py's
    # brnn with hidden 512 is 256 per direction
    enc_layers: int = Field(1, ge=1)
    dec_layers: int = Field(1, ge=1)
    bidirectional: bool = True
    # none: the plain encoder-decoder (the encoder's final state, bridged into the decoder, is all it reads)
    attention: Literal["bahdanau", "luong_dot", "luong_general", "luong_concat", "none"] = "bahdanau"
    input_feeding: bool = True
    dropout: float = Field(0.3, ge=0.0, lt=1.0)
    tied_embeddings: bool = True
    shared_embeddings: bool = False

    @model_validator(mode="after")
    def _feeding_needs_attention(self) -> RNNModelCfg:
        if self.attention == "none" and self.input_feeding:
            raise ValueError("input_feeding feeds the attentional vector back: set input_feeding: false "
                             "with attention: none")
        return self


class TransformerModelCfg(_Strict):
    arch: Literal["transformer"]
    d_model: int = Field(256, gt=0)
    heads: int = Field(4, ge=1)
    enc_layers: int = Field(3, ge=1)
    dec_layers: int = Field(3, ge=1)
    ffn_dim: int = Field(1024, gt=0)
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    tied_embeddings: bool = True
    shared_embeddings: bool = True
    max_positions: int = Field(512, gt=0)

    @model_validator(mode="after")
    def _heads_divide(self) -> TransformerModelCfg:
        if self.d_model % self.heads:
            raise ValueError(f"d_model ({self.d_model}) must be divisible by heads ({self.heads})")
        return self


ModelCfg = Annotated[RNNModelCfg | TransformerModelCfg, Field(discriminator="arch")]


class OptimCfg(_Strict):
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)  # AdamW decay of weight matrices (never norms, biases, embeddings)
    betas: tuple[float, float] = (0.9, 0.98)
    schedule: Literal["inverse_sqrt", "linear", "plateau"] = "inverse_sqrt"  # linear: warm-up, then down
    # to zero at the run's last update (max_epochs / max_steps: the budget the run is sized in)
    warmup_steps: int = Field(500, ge=0)
    plateau_factor: float = Field(0.5, gt=0, lt=1)
    plateau_patience: int = Field(1, ge=0)
    label_smoothing: float = Field(0.1, ge=0.0, lt=1.0)
    clip_norm: float | None = Field(1.0, gt=0)  # global gradient-norm cap; null: never clipped (norms still logged)


class ExperimentCfg(_Strict):
    name: Name
    task: Name
    template: Name | None = None  # the experiment file this one extends (`seqforge task add`)
    model: ModelCfg
    optim: OptimCfg = OptimCfg()
    train: dict[str, Any] = {}  # overrides of conf/config.yaml `train` for this experiment
    tuned_from: str | None = None  # MLflow run id of the sweep whose winner conf/tuned/<name>.yaml holds

    def train_config(self, base: TrainCfg) -> TrainCfg:
        """The global train settings with this experiment's overrides applied (validated)."""
        return validate(TrainCfg, {**base.model_dump(), **self.train}, f"experiment {self.name}: train")


class Config(_Strict):
    """`conf/config.yaml`: what every task and experiment shares, with the profile's overlay."""

    profile: str = "default"
    train: TrainCfg = TrainCfg()
    evaluate: EvaluateCfg = EvaluateCfg()
    serve: ServeCfg = ServeCfg()
    mlflow: MlflowCfg = MlflowCfg()


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"{path}: file not found")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from err
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Recursively merge `over` into a copy of `base` (mappings merge, everything else replaces)."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def validate(model: Any, data: dict[str, Any], source: str) -> Any:
    adapter = model if isinstance(model, TypeAdapter) else TypeAdapter(model)
    try:
        return adapter.validate_python(data)
    except ValidationError as err:
        lines = []
        for e in err.errors():
            key = ".".join(str(p) for p in e["loc"] if p not in ("rnn", "transformer", *TASK_KINDS))
            lines.append(f"  {key}: {e['msg']} (got {e.get('input')!r})")
        raise ConfigError(f"{source}: invalid configuration\n" + "\n".join(lines)) from None


def _active_profile(conf_dir: Path) -> str:
    return str(_read_yaml(conf_dir / "config.yaml").get("profile", "default"))


PROFILE_SECTIONS = ("train", "evaluate", "serve", "mlflow", "tasks", "families", "tune", "study")


def _profile_overlay(profile: str, conf_dir: Path) -> dict[str, Any]:
    path = conf_dir / "profiles" / f"{profile}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in (conf_dir / "profiles").glob("*.yaml"))
        raise ConfigError(
            f"{conf_dir / 'config.yaml'}: profile: unknown profile {profile!r} "
            f"(known: {', '.join(known)})"
        )
    overlay = _read_yaml(path)
    unknown = sorted(set(overlay) - set(PROFILE_SECTIONS))
    if unknown:
        raise ConfigError(f"{path}: {unknown[0]}: not a profile section (sections: {', '.join(PROFILE_SECTIONS)})")
    return overlay


def load_config(conf_dir: Path = CONF_DIR) -> Config:
    """The shared configuration with the active profile's overlay applied."""
    raw = _read_yaml(conf_dir / "config.yaml")
    overlay = {k: v for k, v in _profile_overlay(str(raw.get("profile", "default")), conf_dir).items()
               if k in Config.model_fields}
    sources = f"{conf_dir / 'config.yaml'} (profile {raw.get('profile', 'default')!r})"
    return validate(Config, _merge(raw, overlay), sources)


def set_profile(profile: str, conf_dir: Path = CONF_DIR) -> None:
    """Switch the active profile: rewrite the `profile:` line of `conf/config.yaml` in place."""
    _profile_overlay(profile, conf_dir)  # validates the name
    path = conf_dir / "config.yaml"
    text, n = re.subn(r"(?m)^profile:[ \t]*\S+", f"profile: {profile}", path.read_text(), count=1)
    if n != 1:
        raise ConfigError(f"{path}: no top-level `profile:` line to switch")
    path.write_text(text)


def _names(folder: Path) -> list[str]:
    return sorted(p.stem for p in folder.glob("*.yaml"))


def experiment_names(conf_dir: Path = CONF_DIR) -> list[str]:
    return _names(conf_dir / "experiments")


def task_names(conf_dir: Path = CONF_DIR) -> list[str]:
    return _names(conf_dir / "tasks")


def corpus_names(conf_dir: Path = CONF_DIR) -> list[str]:
    return _names(conf_dir / "corpora")


def _group_file(conf_dir: Path, group: str, name: str, what: str) -> Path:
    path = conf_dir / group / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(_names(conf_dir / group)) or "none"
        raise ConfigError(f"{path}: unknown {what} {name!r} (known: {known})")
    return path


def load_corpus(name: str, conf_dir: Path = CONF_DIR) -> CorpusCfg:
    """`conf/corpora/<name>.yaml`: format, pinned files and how to read them."""
    path = _group_file(conf_dir, "corpora", name, "corpus")
    return validate(CorpusCfg, {"name": name, **_read_yaml(path)}, str(path))


_TASK = TypeAdapter(TaskCfg)


def load_task(name: str, conf_dir: Path = CONF_DIR) -> TranslationTask | ChatbotTask:
    """`conf/tasks/<name>.yaml` with the active profile's `tasks:` overlay; its corpus must exist."""
    path = _group_file(conf_dir, "tasks", name, "task")
    profile = _active_profile(conf_dir)
    overlay = _profile_overlay(profile, conf_dir).get("tasks", {})
    task = validate(_TASK, _merge({"name": name, **_read_yaml(path)}, overlay), f"{path} (profile {profile!r})")
    if not (conf_dir / "corpora" / f"{task.corpus}.yaml").is_file():
        raise ConfigError(f"{path}: corpus: no corpus {task.corpus!r} in {conf_dir / 'corpora'} "
                          f"(known: {', '.join(corpus_names(conf_dir)) or 'none'}; add it with `seqforge corpus add`)")
    return task


def tuned_file(name: str, conf_dir: Path = CONF_DIR) -> Path:
    """`conf/tuned/<name>.yaml`: the best configuration a sweep found (`seqforge tune` writes it)."""
    return conf_dir / "tuned" / f"{name}.yaml"


def load_experiment(name: str, conf_dir: Path = CONF_DIR) -> ExperimentCfg:
    """One experiment: its template (if it names one), `conf/experiments/<name>.yaml`, the active
    profile's overlay for its model family, then a sweep winner from `conf/tuned/<name>.yaml`."""
    path = _group_file(conf_dir, "experiments", name, "experiment")
    data = _read_yaml(path)
    sources = str(path)
    if data.get("template"):
        template = _group_file(conf_dir, "experiments", str(data["template"]), f"template of {path}: experiment")
        base = {k: v for k, v in _read_yaml(template).items() if k not in ("task", "template")}
        data = _merge(base, data)
        sources += f" + template {template}"
    profile = _active_profile(conf_dir)
    family = str((data.get("model") or {}).get("arch", ""))
    data = _merge({"name": name, **data}, _profile_overlay(profile, conf_dir).get("families", {}).get(family, {}))
    tuned = tuned_file(name, conf_dir)
    winner = _read_yaml(tuned) if tuned.is_file() else {}
    if winner.get("overrides"):
        data = _merge(data, winner["overrides"])
        data["tuned_from"] = (winner.get("sweep") or {}).get("mlflow_run_id")
        sources += f" + {tuned}"
    exp = validate(ExperimentCfg, data, f"{sources} (profile {profile!r})")
    if not (conf_dir / "tasks" / f"{exp.task}.yaml").is_file():
        raise ConfigError(f"{path}: task: no task {exp.task!r} in {conf_dir / 'tasks'} "
                          f"(known: {', '.join(task_names(conf_dir))})")
    return exp


def with_overrides(exp: ExperimentCfg, params: dict[str, Any], source: str) -> ExperimentCfg:
    """`exp` with dotted-key values applied (`model.hidden_dim`, `optim.lr`, `train.batch_tokens`)."""
    return validate(ExperimentCfg, _merge(exp.model_dump(mode="json"), nest(params)), source)


def nest(params: dict[str, Any]) -> dict[str, Any]:
    """Dotted keys -> nested mappings: `{"optim.lr": 1}` -> `{"optim": {"lr": 1}}`."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        *parents, leaf = key.split(".")
        node = out
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return out


INDEX_FILE = "pipeline.yaml"
INDEX_HEADER = (
    "# Generated from conf/tasks/ and conf/experiments/ by `seqforge sync` (also run by `seqforge task add`,\n"
    "# `profile` and `fetch`): the task and experiment lists dvc.yaml iterates over. Do not edit by hand.\n"
)


def pipeline_index(conf_dir: Path = CONF_DIR) -> dict[str, Any]:
    """What dvc.yaml's `foreach` needs: every task with its corpus, every experiment with its task."""
    tasks = {}
    for name in task_names(conf_dir):
        path = conf_dir / "tasks" / f"{name}.yaml"
        corpus = _read_yaml(path).get("corpus")
        if not isinstance(corpus, str):
            raise ConfigError(f"{path}: corpus: a corpus name is required")
        tasks[name] = {"corpus": corpus}
    experiments = {}
    for name in experiment_names(conf_dir):
        path = conf_dir / "experiments" / f"{name}.yaml"
        task = _read_yaml(path).get("task")
        if task not in tasks:
            raise ConfigError(f"{path}: task: no task {task!r} in {conf_dir / 'tasks'} (known: {', '.join(tasks)})")
        experiments[name] = {"task": task}
    return {"tasks": tasks, "experiments": experiments}


def write_index(conf_dir: Path = CONF_DIR) -> bool:
    """Rewrite `conf/pipeline.yaml` from the conf groups; True when it changed."""
    path = conf_dir / INDEX_FILE
    text = INDEX_HEADER + yaml.safe_dump(pipeline_index(conf_dir), sort_keys=False)
    if path.is_file() and path.read_text() == text:
        return False
    path.write_text(text)
    return True


def check_index(conf_dir: Path = CONF_DIR) -> None:
    """Fail unless `conf/pipeline.yaml` lists exactly the tasks and experiments conf/ defines."""
    path = conf_dir / INDEX_FILE
    current = _read_yaml(path) if path.is_file() else {}
    wanted = pipeline_index(conf_dir)
    if current != wanted:
        diff = [f"{group} {name}" for group in wanted for name in
                sorted(set(wanted[group]) ^ set(current.get(group) or {}))] or ["its entries"]
        raise ConfigError(f"{path} is out of date with conf/ ({', '.join(diff)}): run `seqforge sync`")


DOMAINS = ("choice", "uniform", "loguniform", "randint")
SPACE_SECTIONS = ("model", "optim", "train")


class SearchCfg(_Strict):
    algorithm: Literal["optuna", "random"] = "optuna"
    seed: int = 0


class SchedulerCfg(_Strict):
    """ASHA on the task's validation metric, one rung decision per epoch."""

    grace_period: int = Field(1, ge=1)  # epochs every trial gets before it may be stopped
    reduction_factor: float = Field(2.0, gt=1.0)  # keep the best 1/reduction_factor at each rung


class TuneCfg(_Strict):
    """A sweep (`conf/tune/<experiment>.yaml`): search space, search algorithm, scheduler, trials."""

    num_samples: int = Field(8, ge=1)
    max_concurrent_trials: int | None = Field(None, ge=1)  # None: as many as the cluster's resources fit
    storage_path: str = "runs/tune"  # a shared URI (s3://, NFS path) on a multi-node cluster
    search: SearchCfg = SearchCfg()
    scheduler: SchedulerCfg = SchedulerCfg()
    train: dict[str, Any] = {}  # `train` overrides for every trial (workers, GPUs, epochs, time cap)
    space: dict[str, dict[str, list[Any]]]

    @model_validator(mode="after")
    def _domains(self) -> TuneCfg:
        for key, domain in self.space.items():
            if key.split(".", 1)[0] not in SPACE_SECTIONS or "." not in key:
                raise ValueError(f"space.{key}: keys are dotted paths under {', '.join(SPACE_SECTIONS)}")
            if len(domain) != 1 or next(iter(domain)) not in DOMAINS:
                raise ValueError(f"space.{key}: expected one of {', '.join(DOMAINS)}, got {domain}")
            kind, args = next(iter(domain.items()))
            if kind == "choice":
                if not args:
                    raise ValueError(f"space.{key}: choice needs at least one value")
                continue
            if len(args) != 2 or not all(isinstance(a, int | float) and not isinstance(a, bool) for a in args):
                raise ValueError(f"space.{key}: {kind} needs [low, high] numbers, got {args}")
            low, high = args
            if not low < high:
                raise ValueError(f"space.{key}: {kind} needs low < high, got {args}")
            if kind == "loguniform" and low <= 0:
                raise ValueError(f"space.{key}: loguniform needs low > 0, got {args}")
            if kind == "randint" and not all(isinstance(a, int) for a in args):
                raise ValueError(f"space.{key}: randint needs integers [low, high), got {args}")
        return self

    def corner(self, key: str) -> Any:
        """One value of `key`'s domain (to check that the key exists in the experiment)."""
        return next(iter(self.space[key].values()))[0]


def load_tune(name: str, conf_dir: Path = CONF_DIR) -> tuple[TuneCfg, ExperimentCfg]:
    """The sweep of experiment `name` (with the profile's `tune` overlay) and its base experiment;
    every space key must exist there."""
    path = conf_dir / "tune" / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in (conf_dir / "tune").glob("*.yaml"))
        raise ConfigError(f"{path}: no sweep for experiment {name!r} (sweeps: {', '.join(known) or 'none'})")
    profile = _active_profile(conf_dir)
    overlay = _profile_overlay(profile, conf_dir).get("tune", {})  # e.g. a cluster's shared storage
    tune = validate(TuneCfg, _merge(_read_yaml(path), overlay), f"{path} (profile {profile!r})")
    exp = load_experiment(name, conf_dir)
    train = {**load_config(conf_dir).train.model_dump(), **tune.train}
    validate(TrainCfg, train, f"{path}: train")
    for key in tune.space:
        source = f"{path}: space.{key}"
        trial = with_overrides(exp, {key: tune.corner(key)}, source)
        validate(TrainCfg, {**train, **trial.train}, source)
    return tune, exp


WIDTHS = {"rnn": {"model.hidden_dim": 1}, "transformer": {"model.d_model": 1, "model.ffn_dim": 3}}


class StudyModelCfg(_Strict):
    """One model of the study: an experiment file, changed by dotted-key `set` values."""

    base: Name | None = None  # the experiment it starts from (default: the study's `base`)
    set: dict[str, Any] = {}  # e.g. model.cell: lstm, optim.clip_norm: null
    width: dict[str, int] | None = None  # keys sized to the parameter budget, as multiples of one width
    # (default: model.hidden_dim for RNNs; model.d_model and 3 × it as model.ffn_dim for Transformers)


class StudyCfg(_Strict):
    """`conf/study.yaml`: the models, the parameter budget they are sized to and the training they share."""

    task: Name = "translation"
    base: Name  # the experiment every model starts from unless it names its own
    parameter_budget: int = Field(..., ge=1000)  # every model sized to the nearest count it can reach
    width_step: int = Field(16, ge=1)  # widths are multiples of this (Transformers: of heads too)
    set: dict[Literal["rnn", "transformer"], dict[str, Any]] = {}  # dotted-key values for every model of a
    # family (model.arch), before its own
    train: dict[str, Any] = {}  # train settings for every model: the same wall-time cap is the budget
    length_buckets: list[int] = Field([10, 15, 20, 25], min_length=1)  # upper source lengths (words) of
    # the BLEU buckets: ≤10, 11–15, 16–20, 21–25, >25
    models: dict[Name, StudyModelCfg] = Field(..., min_length=1)

    @field_validator("length_buckets")
    @classmethod
    def _buckets_rise(cls, edges: list[int]) -> list[int]:
        if edges != sorted(set(edges)) or edges[0] < 1:
            raise ValueError("positive, strictly rising lengths")
        return edges


def load_study(conf_dir: Path = CONF_DIR) -> tuple[StudyCfg, dict[str, tuple[ExperimentCfg, TrainCfg]]]:
    """`conf/study.yaml` with the profile's `study` overlay, and each model's experiment (before sizing
    to the budget) and train settings: global train < the experiment's < the study's."""
    path = conf_dir / "study.yaml"
    profile = _active_profile(conf_dir)
    overlay = _profile_overlay(profile, conf_dir).get("study", {})
    source = f"{path} (profile {profile!r})"
    study = validate(StudyCfg, _merge(_read_yaml(path), overlay), source)
    base_train = load_config(conf_dir).train.model_dump()
    plans = {}
    for name, entry in study.models.items():
        exp = load_experiment(entry.base or study.base, conf_dir)
        if exp.task != study.task:
            raise ConfigError(f"{source}: models.{name}.base: experiment {exp.name!r} is for task {exp.task!r}, "
                              f"the study's task is {study.task!r}")
        exp = with_overrides(exp.model_copy(update={"name": name}), {**study.set.get(exp.model.arch, {}), **entry.set},
                             f"{source}: models.{name}")
        train = validate(TrainCfg, {**base_train, **exp.train, **study.train}, f"{source}: train")
        plans[name] = (exp, train)
    return study, plans


def flatten(data: dict[str, Any] | BaseModel, prefix: str = "") -> dict[str, Any]:
    """Dotted-key view of a nested config, for MLflow params."""
    if isinstance(data, BaseModel):
        data = data.model_dump()
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat
