import pytest

from seqforge.config import ConfigError, load_config, load_experiment, set_profile


def test_profiles_overlay_base_and_experiments(conf_copy) -> None:
    set_profile("smoke", conf_copy)
    cfg = load_config(conf_copy)
    assert cfg.profile == "smoke" and cfg.prepare.max_train_pairs == 1500
    assert load_experiment("transformer", conf_copy).model.d_model == 32
    set_profile("default", conf_copy)
    assert load_config(conf_copy).prepare.max_train_pairs is None


def test_unknown_profile_lists_known_ones(conf_copy) -> None:
    with pytest.raises(ConfigError, match=r"unknown profile 'huge' \(known: default, gpu, smoke\)"):
        set_profile("huge", conf_copy)


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        ("vocab_size: 6000", "vocab_size: 10", "tokenizer.vocab_size"),
        ("tgt_lang: de", "tgt_lang: xx", "translation.tgt_lang"),
        ("beam_size: 5", "beam_sise: 5", "evaluate.beam_sise"),
    ],
)
def test_invalid_value_names_the_key(conf_copy, old: str, new: str, key: str) -> None:
    path = conf_copy / "config.yaml"
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
