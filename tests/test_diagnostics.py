"""Gradient diagnostics: ‖∂L/∂h‖ by distance from the source end, checked against hand-computed cases."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from seqforge.data.batching import collate
from seqforge.data.tokenizer import PAD
from seqforge.models.base import Seq2Seq
from seqforge.models.registry import build_model
from seqforge.models.rnn import RNNModelCfg
from seqforge.training.worker.gradients import encoder_gradients, norm_summary


class LinearRNN(Seq2Seq):
    """h_t = a·h_{t-1} + x_t (scalar state, x_t = the token id / 10), logits = w·h_S for every target position."""

    def __init__(self, a: float, w: list[float]) -> None:
        super().__init__()
        self.a, self.w = torch.nn.Parameter(torch.tensor(a)), torch.tensor(w)  # a parameter: a graph to probe

    def probe_states(self, src: Tensor, src_lens: Tensor, tgt_in: Tensor) -> tuple[Tensor, list[Tensor], Tensor]:
        h = torch.zeros(src.size(0), 1)
        states, distances = [], []
        for t in range(src.size(1)):
            keep = (t < src_lens)[:, None]
            h = torch.where(keep, self.a * h + src[:, t, None].float() / 10, h)
            states.append(h)
            distances.append(torch.where(t < src_lens, src_lens - 1 - t, -1))
        logits = (h * self.w).unsqueeze(1).expand(-1, tgt_in.size(1), -1)
        return logits, states, torch.stack(distances)


def test_linear_rnn_gradient_by_distance_is_the_hand_computed_power_of_a() -> None:
    """One sentence of 4 tokens (3 + EOS), target of one token (+ EOS): L = mean over the 2 positions of
    -log softmax(w·h_S)[y]. By hand: ∂L/∂h_S = Σ_v (p_v − ȳ_v) w_v with ȳ the mean one-hot of the two
    targets, and ∂L/∂h_t = a^(S−t) ∂L/∂h_S, so distance d gives |∂L/∂h_S|·|a|^d."""
    a, w = 0.5, [0.0, 1.0, -2.0, 0.5, 0.0, 3.0]  # vocabulary of 6: PAD, UNK, BOS, EOS (3), SEP, one word (5)
    batch = collate([{"src_ids": [5, 5, 5], "tgt_ids": [5], "index": 0}])  # src 5 5 5 EOS; tgt_out 5 EOS
    h_s = sum(a ** (3 - t) * x / 10 for t, x in enumerate([5, 5, 5, 3]))  # 0.0625+0.125+0.25+0.3 = 0.7375
    p = [math.exp(h_s * wv) for wv in w]
    p = [v / sum(p) for v in p]
    target = [0.0, 0.0, 0.0, 0.5, 0.0, 0.5]  # tokens EOS and 5, half each in the mean
    g = sum((pv - tv) * wv for pv, tv, wv in zip(p, target, w, strict=True))
    curve = encoder_gradients(LinearRNN(a, w), batch)
    assert curve == pytest.approx([abs(g) * a**d for d in range(4)], rel=1e-5)


def test_vanilla_rnn_states_get_the_gradient_backpropagation_through_time_gives() -> None:
    """The real encoder (cell rnn, unidirectional, no attention), two sentences of different lengths:
    from the gradient at the last state, ∂L/∂h_{t-1} = ∂L/∂h_t · diag(1 − h_t²) · W_hh by hand, step by
    step, must give what `encoder_gradients` reports at every distance."""
    torch.manual_seed(0)
    cfg = RNNModelCfg(
        arch="rnn",
        cell="rnn",
        emb_dim=6,
        hidden_dim=5,
        attention="none",
        input_feeding=False,
        bidirectional=False,
        dropout=0.0,
    )
    model = build_model(cfg, 20, 20).eval()
    batch = collate(
        [
            {"src_ids": [7, 8, 9, 10, 11], "tgt_ids": [6, 7], "index": 0},
            {"src_ids": [12, 13, 14], "tgt_ids": [15, 16, 17], "index": 1},
        ]
    )
    logits, states, distances = model.probe_states(batch["src"], batch["src_lens"], batch["tgt_in"])
    loss = F.cross_entropy(logits.flatten(0, 1), batch["tgt_out"].flatten(), ignore_index=PAD)
    grads = torch.autograd.grad(loss, states)
    w_hh = model.encoder.weight_hh_l0.detach()
    by_hand: dict[int, list[float]] = {}
    for b, length in enumerate(batch["src_lens"].tolist()):
        g = grads[length - 1][b]  # the last state read: what the bridge takes
        for d in range(length):
            t = length - 1 - d
            assert int(distances[t, b]) == d
            by_hand.setdefault(d, []).append(float(g.norm()))
            torch.testing.assert_close(grads[t][b], g)  # autograd's total gradient at that state
            h_t = states[t][b].detach()
            g = (g * (1 - h_t**2)) @ w_hh
        assert all(int(distances[t, b]) == -1 for t in range(length, batch["src"].size(1)))
    expected = [sum(v) / len(v) for d, v in sorted(by_hand.items()) if d < int(batch["src_lens"].min())]
    assert encoder_gradients(model, batch) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("attention", ["none", "bahdanau"])
def test_unrolled_encoder_computes_what_the_fused_one_does(cell: str, attention: str) -> None:
    """The probe runs the encoder step by step; its logits and gradients must be the model's own (one fused
    RNN call per layer and direction, the backward one over each sentence reversed within its length), for
    two layers, both directions and padded batches."""
    torch.manual_seed(0)
    cfg = RNNModelCfg(
        arch="rnn",
        cell=cell,
        emb_dim=8,
        hidden_dim=12,
        enc_layers=2,
        attention=attention,
        input_feeding=attention != "none",
        dropout=0.0,
    )
    model = build_model(cfg, 30, 30).eval()
    batch = collate(
        [{"src_ids": list(range(5, 5 + n)), "tgt_ids": [9] * (n % 4 + 1), "index": i} for i, n in enumerate([3, 9, 6])]
    )
    real = batch["tgt_out"] != PAD
    fused = model(batch["src"], batch["src_lens"], batch["tgt_in"])
    probed, states, distances = model.probe_states(batch["src"], batch["src_lens"], batch["tgt_in"])
    torch.testing.assert_close(probed[real], fused[real], rtol=1e-5, atol=1e-5)
    weights = list(model.encoder.parameters())
    for fused_grad, probed_grad in zip(
        torch.autograd.grad(fused[real].sum(), weights), torch.autograd.grad(probed[real].sum(), weights), strict=True
    ):
        torch.testing.assert_close(probed_grad, fused_grad, rtol=1e-4, atol=1e-5)
    assert len(states) == 2 * batch["src"].size(1)  # top layer, both directions
    assert sorted(distances[:, 0][distances[:, 0] >= 0].tolist()) == sorted(list(range(4)) * 2)


def test_without_attention_the_far_gradient_vanishes_and_with_it_it_does_not() -> None:
    """At initialisation a plain vanilla-RNN encoder-decoder passes far less gradient to distant states
    than the same network with attention, whose every state is one step from the loss."""
    torch.manual_seed(0)
    batch = collate([{"src_ids": list(range(5, 25)), "tgt_ids": list(range(5, 25)), "index": 0}])
    decay = {}
    for attention in ("none", "bahdanau"):
        cfg = RNNModelCfg(
            arch="rnn", cell="rnn", emb_dim=16, hidden_dim=32, attention=attention, input_feeding=False, dropout=0.0
        )
        curve = encoder_gradients(build_model(cfg, 30, 30), batch)
        decay[attention] = curve[-1] / curve[0]
    assert decay["none"] < 1e-3 and decay["bahdanau"] > 0.1


def test_norm_summary_quantiles_clip_rate_and_histogram() -> None:
    norms = torch.tensor([0.5, 1.0, 2.0, 4.0, 8.0, float("inf")])
    summary = norm_summary(norms, clip_norm=3.0)
    assert summary["updates"] == 6 and summary["nonfinite"] == 1
    assert summary["clip_rate"] == pytest.approx(3 / 6)  # 4, 8, inf
    assert summary["max"] == 8.0 and summary["p50"] == 2.0
    assert sum(summary["histogram"]) == 5  # the finite ones
    assert norm_summary(norms[:3], clip_norm=None)["clip_rate"] == 0.0


def test_an_epoch_of_only_non_finite_norms_still_summarises_and_plots() -> None:
    """Plain SGD at a high learning rate without clipping: every gradient norm NaN (the long-range study)."""
    from seqforge.training.diagnostics import NORM_EDGES, plot_norm_histograms

    summary = norm_summary(torch.tensor([float("nan"), float("inf"), float("nan")]), clip_norm=None)
    assert summary["nonfinite"] == 3 and summary["histogram"] == [0] * (len(NORM_EDGES) - 1)
    assert math.isnan(summary["max"]) and summary["clip_rate"] == 0.0
    plot_norm_histograms({"epoch 1": summary["histogram"]}, "all NaN")
