import pytest
import torch

from seqforge.config import RNNModelCfg, TransformerModelCfg
from seqforge.data.tokenizer import PAD
from seqforge.decoding import beam_search, greedy, max_lengths
from seqforge.models import build_model

MODELS = {
    "gru_bahdanau": RNNModelCfg(arch="rnn", cell="gru", emb_dim=16, hidden_dim=24, attention="bahdanau"),
    "lstm_luong": RNNModelCfg(arch="rnn", cell="lstm", emb_dim=16, hidden_dim=24, attention="luong_general",
                              enc_layers=2, dec_layers=2, tied_embeddings=False),
    "rnn_dot": RNNModelCfg(arch="rnn", cell="rnn", emb_dim=16, hidden_dim=24, bidirectional=False,
                           attention="luong_dot", input_feeding=False),
    "transformer": TransformerModelCfg(arch="transformer", d_model=16, heads=2, enc_layers=2,
                                       dec_layers=2, ffn_dim=32),
}


def batch(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    lens = torch.randint(2, 9, (5,), generator=gen)
    src = torch.randint(5, 40, (5, int(lens.max())), generator=gen)
    src[torch.arange(src.size(1))[None, :] >= lens[:, None]] = PAD
    return src, lens


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_beam_one_equals_greedy(name: str, seed: int) -> None:
    torch.manual_seed(seed)
    model = build_model(MODELS[name], 40, 40).eval()
    src, lens = batch(seed)
    limit = max_lengths(lens, 1.5, 4)
    beams = beam_search(model, src, lens, limit, beam_size=1, alpha=0.0)
    assert [hyps[0].tokens for hyps in beams] == greedy(model, src, lens, limit)


@pytest.mark.parametrize("name", MODELS)
def test_beam_n_best_is_ranked_and_bounded(name: str) -> None:
    torch.manual_seed(0)
    model = build_model(MODELS[name], 40, 40).eval()
    src, lens = batch(3)
    limit = max_lengths(lens, 1.0, 2)
    beams = beam_search(model, src, lens, limit, beam_size=4, alpha=1.0, n_best=3)
    for hyps, cap in zip(beams, limit.tolist(), strict=True):
        assert len(hyps) == 3
        scores = [h.score for h in hyps]
        assert scores == sorted(scores, reverse=True)
        assert all(len(h.tokens) < cap for h in hyps)  # EOS counts towards the cap


def test_padding_does_not_change_the_result() -> None:
    """A sentence decodes the same alone and in a padded batch (encoder packing + masks)."""
    torch.manual_seed(0)
    for cfg in MODELS.values():
        model = build_model(cfg, 40, 40).eval()
        src, lens = batch(4)
        limit = max_lengths(lens, 1.5, 4)
        together = beam_search(model, src, lens, limit, beam_size=3)
        short = int(lens.argmin())
        alone = beam_search(model, src[short : short + 1, : lens[short]], lens[short : short + 1],
                            limit[short : short + 1], beam_size=3)
        assert together[short][0].tokens == alone[0][0].tokens
