import pytest
import yaml

from helpers import ROOT
from seqforge.config.base import ConfigError, set_profile
from seqforge.config.index import check_index, pipeline_index
from seqforge.config.shared import load_config
from seqforge.experiments.config import experiment_names, load_experiment
from seqforge.stages.resolve import resolve_all
from seqforge.tasks.registry import load_task


def test_profiles_overlay_base_tasks_and_families(conf_copy) -> None:
    set_profile("smoke", conf_copy)
    assert load_config(conf_copy).profile == "smoke"
    chat = load_task("chatbot", conf_copy)
    assert load_task("translation", conf_copy).data.max_train_pairs == 1500
    assert chat.data.max_eval_pairs == 300 and chat.decode.no_repeat_ngram == 3  # merged, not replaced
    assert load_experiment("transformer", conf_copy).model.d_model == 32  # the transformer family overlay
    assert load_experiment("lstm_luong", conf_copy).model.hidden_dim == 32  # the rnn family overlay
    set_profile("default", conf_copy)
    assert load_task("translation", conf_copy).data.max_train_pairs is None


def test_unknown_profile_lists_known_ones(conf_copy) -> None:
    with pytest.raises(ConfigError, match=r"profile: unknown profile 'huge' \(known: cluster, default, gpu, smoke\)"):
        set_profile("huge", conf_copy)


@pytest.mark.parametrize(
    ("task", "old", "new", "message"),
    [
        (
            "translation",
            "vocab_size: 6000",
            "vocab_size: 10",
            "tokenizer.vocab_size: Input should be greater than or equal to 100 (got 10)",
        ),
        (
            "translation",
            "tgt_lang: de",
            "tgt_lang: 'not a language'",
            "tgt_lang: String should match pattern '^[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})*$' (got 'not a language')",
        ),
        ("translation", "beam_size: 5", "beam_sise: 5", "decode.beam_sise: Extra inputs are not permitted (got 5)"),
        (
            "translation",
            "library: tokenizers",
            "library: spacy",
            "tokenizer.library: Input should be 'tokenizers' or 'sentencepiece' (got 'spacy')",
        ),
        (
            "chatbot",
            "context_turns: 3",
            "context_turns: 0",
            "data.context_turns: Input should be greater than or equal to 1 (got 0)",
        ),
        ("chatbot", "top_p: 0.9", "top_p: 1.5", "decode.top_p: Input should be less than or equal to 1 (got 1.5)"),
        (
            "chatbot",
            "strategy: sample",
            "strategy: nucleus",
            "decode.strategy: Input should be 'beam' or 'sample' (got 'nucleus')",
        ),
    ],
)
def test_invalid_value_names_the_file_and_key(conf_copy, task: str, old: str, new: str, message: str) -> None:
    path = conf_copy / "tasks" / f"{task}.yaml"
    assert old in path.read_text()
    path.write_text(path.read_text().replace(old, new))
    with pytest.raises(ConfigError) as err:
        load_task(task, conf_copy)
    assert str(err.value) == f"{path} (profile 'default'): invalid configuration\n  {message}"


def test_any_language_code_is_accepted(conf_copy) -> None:
    path = conf_copy / "tasks" / "translation.yaml"
    path.write_text(
        path.read_text().replace("src_lang: en", "src_lang: zh-Hans").replace("tgt_lang: de", "tgt_lang: ko")
    )
    task = load_task("translation", conf_copy)
    assert (task.src_lang, task.tgt_lang) == ("zh-Hans", "ko")


def test_a_task_whose_corpus_is_missing_is_named(conf_copy) -> None:
    (conf_copy / "corpora" / "dailydialog.yaml").unlink()
    with pytest.raises(ConfigError, match=r"tasks/chatbot\.yaml: corpus: no corpus 'dailydialog'.*seqforge corpus add"):
        load_task("chatbot", conf_copy)


def test_experiment_train_overrides_are_validated(conf_copy) -> None:
    path = conf_copy / "experiments" / "gru_bahdanau.yaml"
    path.write_text(path.read_text() + "train:\n  num_workers: 0\n")
    exp = load_experiment("gru_bahdanau", conf_copy)
    with pytest.raises(ConfigError, match=r"experiment gru_bahdanau: train: invalid configuration\n  num_workers: "):
        exp.train_config(load_config(conf_copy).train)


def test_unknown_experiment(conf_copy) -> None:
    with pytest.raises(ConfigError, match=r"unknown experiment 'nope' \(known: .*gru_bahdanau"):
        load_experiment("nope", conf_copy)


def test_an_experiment_extends_its_template(conf_copy) -> None:
    (conf_copy / "experiments" / "mine.yaml").write_text(
        "task: translation\ntemplate: transformer\nmodel: {heads: 8}\n"
    )
    exp, template = load_experiment("mine", conf_copy), load_experiment("transformer", conf_copy)
    assert exp.model.heads == 8 and exp.model.d_model == template.model.d_model and exp.optim == template.optim


def test_committed_index_agrees_with_conf() -> None:
    """dvc.yaml iterates over conf/pipeline.yaml; it must list exactly what conf/ defines."""
    check_index(ROOT / "conf")
    index = yaml.safe_load((ROOT / "conf" / "pipeline.yaml").read_text())
    assert set(index["experiments"]) == set(experiment_names(ROOT / "conf"))


def test_a_new_experiment_file_makes_the_index_stale(conf_copy) -> None:
    (conf_copy / "experiments" / "mine.yaml").write_text("task: translation\ntemplate: transformer\n")
    with pytest.raises(ConfigError, match=r"pipeline\.yaml is out of date.*experiments mine.*seqforge sync"):
        check_index(conf_copy)
    assert pipeline_index(conf_copy)["experiments"]["mine"] == {"task": "translation"}


def test_resolved_configs_change_only_where_values_change(conf_copy, tmp_path) -> None:
    """What DVC sees: a profile decoding change touches evaluate/register files only; a family's
    model change touches the train files of that family only."""
    out = tmp_path / "resolved"
    resolve_all(conf_copy, out)
    assert resolve_all(conf_copy, out) == []  # nothing changed, nothing rewritten
    profile = conf_copy / "profiles" / "default.yaml"
    profile.write_text("tasks:\n  decode: {beam_size: 3}\n")
    changed = {p.relative_to(out).as_posix() for p in resolve_all(conf_copy, out)}
    assert changed and all(p.endswith(("/evaluate.yaml", "/register.yaml")) for p in changed)
    assert "experiments/gru_bahdanau/evaluate.yaml" in changed
    profile.write_text("tasks:\n  decode: {beam_size: 3}\nfamilies:\n  transformer:\n    model: {dropout: 0.2}\n")
    changed = {p.relative_to(out).as_posix() for p in resolve_all(conf_copy, out)}
    assert changed == {"experiments/transformer/train.yaml", "experiments/chatbot_transformer/train.yaml"}


def test_stack_config_errors_name_the_file_and_key(conf_copy) -> None:
    from seqforge.stack.config import load_stack

    stack = load_stack(conf_copy)
    assert stack.ray_storage().startswith(f"s3://{stack.s3.bucket}/{stack.ray.prefix}?endpoint_override=")
    (conf_copy / "stack.yaml").write_text("postgres: {port: five}\n")
    with pytest.raises(ConfigError, match=r"stack\.yaml: invalid configuration\n  postgres\.port: "):
        load_stack(conf_copy)


def test_ray_storage_puts_train_and_tune_under_the_stack_bucket(monkeypatch, tmp_path) -> None:
    from seqforge.core.paths import ray_storage

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SEQFORGE_RAY_STORAGE", raising=False)
    assert ray_storage("runs/ray", "train") == str(tmp_path / "runs" / "ray")  # local paths are made absolute
    assert ray_storage("s3://b/ray", "train") == "s3://b/ray"
    monkeypatch.setenv("SEQFORGE_RAY_STORAGE", "s3://b/ray/?endpoint_override=h:1&scheme=http")
    assert ray_storage("runs/ray", "train") == "s3://b/ray/train?endpoint_override=h:1&scheme=http"
    assert ray_storage("runs/tune", "tune") == "s3://b/ray/tune?endpoint_override=h:1&scheme=http"
