import pytest
import torch

from seqforge.config.base import ConfigError
from seqforge.experiments.config import load_experiment
from seqforge.models.attention import KINDS, Attention


@pytest.mark.parametrize("kind", KINDS)
def test_shapes_and_padding_gets_zero_weight(kind: str) -> None:
    torch.manual_seed(0)
    batch, queries, src_len, dim = 3, 2, 6, 8
    att = Attention(kind, query_dim=dim, key_dim=dim, attn_dim=5)
    keys, query = torch.randn(batch, src_len, dim), torch.randn(batch, queries, dim)
    lengths = torch.tensor([6, 4, 1])
    mask = torch.arange(src_len)[None, :] < lengths[:, None]
    context, weights = att(query, keys, att.project_keys(keys), mask)
    assert context.shape == (batch, queries, dim) and weights.shape == (batch, queries, src_len)
    padded = ~mask.unsqueeze(1).expand_as(weights)
    assert torch.all(weights[padded] == 0)
    torch.testing.assert_close(weights.sum(-1), torch.ones(batch, queries))
    assert torch.all(weights[~padded] > 0)
    # padding content must not leak into the context either
    keys2 = keys.clone()
    keys2[~mask] = 1e3
    context2, _ = att(query, keys2, att.project_keys(keys2), mask)
    torch.testing.assert_close(context, context2)
    # each query attends on its own: the second one alone gives the same context
    alone, _ = att(query[:, 1:], keys, att.project_keys(keys), mask)
    torch.testing.assert_close(alone, context[:, 1:])


def test_different_query_and_key_sizes() -> None:
    for kind in ("bahdanau", "luong_general", "luong_concat"):
        att = Attention(kind, query_dim=4, key_dim=10, attn_dim=7)
        keys = torch.randn(2, 5, 10)
        context, _ = att(torch.randn(2, 1, 4), keys, att.project_keys(keys), torch.ones(2, 5, dtype=torch.bool))
        assert context.shape == (2, 1, 10)
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


def test_transformer_attention_weights_are_the_ones_it_uses() -> None:
    """With one head, the reported weights times the values give the layer's own cross-attention."""
    from seqforge.models.transformer import MultiHeadAttention

    torch.manual_seed(0)
    att = MultiHeadAttention(d_model=8, heads=1, dropout=0.0).eval()
    x, memory = torch.randn(2, 3, 8), torch.randn(2, 5, 8)
    mask = torch.tensor([[True] * 5, [True, True, False, False, False]])
    weights = att.weights(x, memory, mask)
    assert torch.all(weights[1, :, 2:] == 0)
    values = att.kv_proj(memory).chunk(2, dim=-1)[1]
    torch.testing.assert_close(att.out_proj(weights @ values), att(x, memory, key_mask=mask))


def test_attention_heatmaps_are_written_as_png(tmp_path) -> None:
    from seqforge.config.shared import TokenizerCfg
    from seqforge.data.tokenizer import SubwordTokenizer
    from seqforge.inference.attention_maps import save_attention_maps
    from seqforge.models.registry import build_model
    from seqforge.models.rnn import RNNModelCfg

    texts = ["a man rides a bike", "two dogs play in the snow", "ein Mann fährt Rad", "zwei Hunde spielen"] * 5
    tokenizer = SubwordTokenizer.train(texts, texts, TokenizerCfg(vocab_size=100, min_frequency=1))
    model = build_model(RNNModelCfg(arch="rnn", emb_dim=8, hidden_dim=8), 100, 100)
    src = tokenizer.encode(["a man rides a bike", "two dogs"], "source")
    out = tokenizer.encode(["ein Mann", "zwei Hunde spielen"], "target")
    files = save_attention_maps(model, tokenizer, src, out, tmp_path / "maps", "tiny")
    assert [f.name for f in files] == ["sample_00.png", "sample_01.png"]
    assert all(f.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f.stat().st_size > 5000 for f in files)
