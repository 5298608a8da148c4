import pytest

from seqforge.config import ConfigError, load_config, load_experiment, set_profile


def test_profiles_overlay_base_and_experiments(conf_copy) -> None:
    set_profile("smoke", conf_copy)
    cfg = load_config(conf_copy)
    assert cfg.profile == "smoke" and cfg.translation.data.max_train_pairs == 1500
    assert cfg.chatbot.data.max_eval_pairs == 300 and cfg.chatbot.decode.no_repeat_ngram == 3  # merged, not replaced
    assert load_experiment("transformer", conf_copy).model.d_model == 32
    set_profile("default", conf_copy)
    assert load_config(conf_copy).translation.data.max_train_pairs is None


def test_unknown_profile_lists_known_ones(conf_copy) -> None:
    with pytest.raises(ConfigError, match=r"unknown profile 'huge' \(known: cluster, default, gpu, smoke\)"):
        set_profile("huge", conf_copy)


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        ("vocab_size: 6000", "vocab_size: 10", "translation.tokenizer.vocab_size"),
        ("tgt_lang: de", "tgt_lang: xx", "translation.data.tgt_lang"),
        ("beam_size: 5", "beam_sise: 5", "translation.decode.beam_sise"),
        ("context_turns: 3", "context_turns: 0", "chatbot.data.context_turns"),
        ("top_p: 0.9", "top_p: 1.5", "chatbot.decode.top_p"),
        ("strategy: sample", "strategy: nucleus", "chatbot.decode.strategy"),
    ],
)
def test_invalid_value_names_the_key(conf_copy, old: str, new: str, key: str) -> None:
    path = conf_copy / "config.yaml"
    assert old in path.read_text()
    path.write_text(path.read_text().replace(old, new))
    with pytest.raises(ConfigError) as err:
        load_config(conf_copy)
    assert str(path) in str(err.value) and key in str(err.value)


def test_experiment_train_overrides_are_validated(conf_copy) -> None:
    path = conf_copy / "experiments" / "gru_bahdanau.yaml"
    path.write_text(path.read_text() + "train:\n  num_workers: 0\n")
    exp = load_experiment("gru_bahdanau", conf_copy)
    with pytest.raises(ConfigError, match="num_workers"):
        exp.train_config(load_config(conf_copy).train)


def test_unknown_experiment(conf_copy) -> None:
    with pytest.raises(ConfigError, match="unknown experiment 'nope'.*gru_bahdanau"):
        load_experiment("nope", conf_copy)


def test_dvc_yaml_agrees_with_experiment_tasks() -> None:
    """dvc.yaml wires each experiment to its task's data; it must match conf/experiments."""
    import yaml

    from seqforge.config import TASKS, experiment_names
    from conftest import ROOT

    declared = {}
    for entry in yaml.safe_load((ROOT / "dvc.yaml").read_text())["vars"]:
        if isinstance(entry, dict):
            declared.update(entry)
    assert set(declared["tasks"]) == set(TASKS)
    assert {name: spec["task"] for name, spec in declared["experiments"].items()} == {
        name: load_experiment(name, ROOT / "conf").task for name in experiment_names(ROOT / "conf")
    }
