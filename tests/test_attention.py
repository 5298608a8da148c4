import pytest
import torch

from seqforge.config import ConfigError, load_experiment
from seqforge.models.attention import KINDS, Attention


@pytest.mark.parametrize("kind", KINDS)
def test_shapes_and_padding_gets_zero_weight(kind: str) -> None:
    torch.manual_seed(0)
    batch, src_len, dim = 3, 6, 8
    att = Attention(kind, query_dim=dim, key_dim=dim, attn_dim=5)
    keys, query = torch.randn(batch, src_len, dim), torch.randn(batch, dim)
    lengths = torch.tensor([6, 4, 1])
    mask = torch.arange(src_len)[None, :] < lengths[:, None]
    context, weights = att(query, keys, att.project_keys(keys), mask)
    assert context.shape == (batch, dim) and weights.shape == (batch, src_len)
    assert torch.all(weights[~mask] == 0)
    torch.testing.assert_close(weights.sum(-1), torch.ones(batch))
    assert torch.all(weights[mask] > 0)
    # padding content must not leak into the context either
    keys2 = keys.clone()
    keys2[~mask] = 1e3
    context2, _ = att(query, keys2, att.project_keys(keys2), mask)
    torch.testing.assert_close(context, context2)


def test_different_query_and_key_sizes() -> None:
    for kind in ("bahdanau", "luong_general", "luong_concat"):
        att = Attention(kind, query_dim=4, key_dim=10, attn_dim=7)
        keys = torch.randn(2, 5, 10)
        context, _ = att(torch.randn(2, 4), keys, att.project_keys(keys), torch.ones(2, 5, dtype=torch.bool))
        assert context.shape == (2, 10)
    with pytest.raises(ValueError, match="luong_dot needs equal"):
        Attention("luong_dot", query_dim=4, key_dim=10, attn_dim=7)


def test_unknown_kind_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"model\.attention: unknown attention kind 'cosine'"):
        Attention("cosine", 4, 4, 4)


def test_unknown_kind_in_config_names_file_and_key(conf_copy) -> None:
    path = conf_copy / "experiments" / "gru_bahdanau.yaml"
    path.write_text(path.read_text().replace("attention: bahdanau", "attention: cosine"))
    with pytest.raises(ConfigError) as err:
        load_experiment("gru_bahdanau", conf_copy)
    message = str(err.value)
    assert str(path) in message and "model.attention" in message and "cosine" in message
