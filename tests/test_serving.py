"""The serving contract below HTTP: what a registered model accepts, counted in tokens."""

from __future__ import annotations

import pytest

from seqforge.config.shared import DecodeCfg, TokenizerCfg
from seqforge.data.tokenizer import SubwordTokenizer
from seqforge.experiments.config import experiment_schema
from seqforge.inference.predictor import Predictor
from seqforge.models.registry import build_model
from seqforge.tasks.base import RequestError

WORDS = ["a", "man", "is", "riding", "a", "bike", "two", "dogs", "play", "in", "the", "snow"]
META = {"kind": "translation", "task": {"data": {"normalization": "nfc"}}}


def predictor(model: dict) -> Predictor:
    tok = SubwordTokenizer.train(
        [" ".join(WORDS)] * 20, [" ".join(WORDS)] * 20, TokenizerCfg(vocab_size=100, min_frequency=1)
    )
    size = tok.vocab_size("source")
    exp = experiment_schema().model_validate({"name": "x", "task": "translation", "model": model})
    return Predictor(build_model(exp.model, size, size), tok, META, DecodeCfg(beam_size=2, max_len_offset=3))


def test_sources_over_the_token_limit_are_request_errors_naming_row_and_limit() -> None:
    served = predictor({"arch": "rnn", "hidden_dim": 8, "emb_dim": 8})
    short, long = "a man is riding a bike", " ".join(WORDS * 3)
    assert len(served.predict([short, short], max_tokens=40)) == 2
    with pytest.raises(
        RequestError,
        match=r"row 1: \d+ tokens after tokenisation, more than the limit of 20 "
        r"\(serve.max_tokens\)",
    ):
        served.predict([short, long], max_tokens=20)


def test_a_transformer_refuses_sources_longer_than_its_positions_before_decoding() -> None:
    """1,000 characters of an unseen script can exceed `max_positions`: a request error, not a crash."""
    served = predictor(
        {
            "arch": "transformer",
            "d_model": 16,
            "heads": 2,
            "enc_layers": 1,
            "dec_layers": 1,
            "ffn_dim": 16,
            "max_positions": 16,
        }
    )
    assert len(served.predict(["two dogs"], max_tokens=256)) == 1
    with pytest.raises(
        RequestError,
        match=r"row 0: \d+ tokens after tokenisation, more than the limit of 15 "
        r"\(model.max_positions 16, EOS included\)",
    ):
        served.predict([" ".join(WORDS * 2)], max_tokens=256)
