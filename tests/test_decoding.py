import pytest
import torch

from seqforge.data.tokenizer import BOS, EOS, PAD, SEP, UNK
from seqforge.inference.decoding import (
    Sampler,
    beam_search,
    generate,
    greedy,
    length_penalty,
    max_lengths,
    ngram_bans,
)
from seqforge.models.registry import build_model
from seqforge.models.rnn import RNNModelCfg
from seqforge.models.transformer import TransformerModelCfg

MODELS = {
    "gru_bahdanau": RNNModelCfg(arch="rnn", cell="gru", emb_dim=16, hidden_dim=24, attention="bahdanau"),
    "lstm_luong": RNNModelCfg(
        arch="rnn",
        cell="lstm",
        emb_dim=16,
        hidden_dim=24,
        attention="luong_general",
        enc_layers=2,
        dec_layers=2,
        tied_embeddings=False,
    ),
    "rnn_dot": RNNModelCfg(
        arch="rnn",
        cell="rnn",
        emb_dim=16,
        hidden_dim=24,
        bidirectional=False,
        attention="luong_dot",
        input_feeding=False,
    ),
    "transformer": TransformerModelCfg(arch="transformer", d_model=16, heads=2, enc_layers=2, dec_layers=2, ffn_dim=32),
}


def batch(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    lens = torch.randint(2, 9, (5,), generator=gen)
    src = torch.randint(5, 40, (5, int(lens.max())), generator=gen)
    src[torch.arange(src.size(1))[None, :] >= lens[:, None]] = PAD
    return src, lens


@pytest.mark.parametrize("name", MODELS)
def test_step_by_step_decoding_reproduces_teacher_forced_log_probs(name: str) -> None:
    """`encode` + `decode_step` one token at a time (the Transformer over its key/value cache, the
    RNN without input feeding against its one fused RNN call) give the log-probabilities of
    `forward` on the whole target, also after `reorder_state` moved rows."""
    torch.manual_seed(0)
    model = build_model(MODELS[name], 40, 40).eval()
    src, lens = batch(3)
    tgt_in = torch.randint(5, 40, (src.size(0), 7), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        expected = torch.log_softmax(model(src, lens, tgt_in).float(), dim=-1)
        order = torch.tensor([4, 0, 3, 1, 2])
        state = model.reorder_state(model.encode(src, lens), order, order)  # as search does
        steps = []
        for t in range(tgt_in.size(1)):
            logits, state = model.decode_step(tgt_in[order, t], state)
            steps.append(logits.log_softmax(-1))
    torch.testing.assert_close(torch.stack(steps, 1), expected[order], atol=1e-5, rtol=1e-5)


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
        alone = beam_search(
            model, src[short : short + 1, : lens[short]], lens[short : short + 1], limit[short : short + 1], beam_size=3
        )
        assert together[short][0].tokens == alone[0][0].tokens


def repeats(tokens: list[int], n: int) -> bool:
    grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
    return len(grams) != len(set(grams))


def banned_by_hand(history: list[int], n: int) -> set[int]:
    """Tokens that complete an n-gram already in `history`, the obvious way."""
    grams = [tuple(history[i : i + n]) for i in range(len(history) - n + 1)]
    prefix = tuple(history[len(history) - n + 1 :]) if n > 1 else ()
    return {gram[-1] for gram in grams if gram[:-1] == prefix}


def test_ngram_bans_complete_only_seen_ngrams() -> None:
    rows = torch.tensor([[7, 8, 9, 7, 8], [7, 8, 9, 7, 9], [1, 1, 1, 1, 1], [5, 6, 7, 8, 9]])
    for n in (1, 2, 3, 5, 6):
        bans = ngram_bans(rows, n, vocab=12)
        for row, mask in zip(rows.tolist(), bans, strict=True):
            assert set(mask.nonzero().flatten().tolist()) == banned_by_hand(row, n)
    assert set(ngram_bans(rows[:1], 3, 12)[0].nonzero().flatten().tolist()) == {9}  # "7 8" was followed by 9


def test_finished_sentences_leave_the_batch() -> None:
    """Rows per decoder step fall as sentences finish, and every sentence decodes as it does alone."""
    torch.manual_seed(0)
    model = build_model(MODELS["transformer"], 40, 40).eval()
    rows_seen = []
    step = model.decode_step
    model.decode_step = lambda prev, state: (rows_seen.append(prev.size(0)), step(prev, state))[1]
    src, lens = batch(8)
    limit = torch.tensor([2, 9, 4, 12, 6])
    together = beam_search(model, src, lens, limit, beam_size=3, n_best=2)
    assert rows_seen[0] == 15 and rows_seen[-1] < 15 and rows_seen == sorted(rows_seen, reverse=True)
    assert len(rows_seen) == 11  # the longest cap, 12 tokens with EOS: its last step writes the 11th
    rows_seen.clear()
    greedy_out = greedy(model, src, lens, limit)
    assert rows_seen[0] == 5 and rows_seen[-1] == 1
    for i in range(5):
        alone = beam_search(model, src[i : i + 1, : lens[i]], lens[i : i + 1], limit[i : i + 1], 3, n_best=2)
        assert [h.tokens for h in alone[0]] == [h.tokens for h in together[i]]
        assert [h.score for h in alone[0]] == pytest.approx([h.score for h in together[i]], abs=1e-5)
        assert greedy(model, src[i : i + 1, : lens[i]], lens[i : i + 1], limit[i : i + 1]) == [greedy_out[i]]


def test_output_length_is_clamped_to_the_model_positions() -> None:
    """A cap beyond what the Transformer can represent ends at its last position, not with an error."""
    torch.manual_seed(0)
    model = build_model(MODELS["transformer"].model_copy(update={"max_positions": 9}), 40, 40).eval()
    src, lens = batch(2)
    limit = torch.full_like(lens, 50)
    for out in generate(model, src, lens, limit, min_length=50):
        assert len(out) == 8  # 9 positions: 8 tokens and EOS
    assert all(len(h[0].tokens) == 8 for h in beam_search(model, src, lens, limit, 2, min_length=50))


@pytest.mark.parametrize("name", ["gru_bahdanau", "transformer"])
@pytest.mark.parametrize("how", ["greedy", "sample", "beam"])
def test_ngram_blocking_never_repeats_a_blocked_ngram(name: str, how: str) -> None:
    """A random small-vocabulary model loops; with blocking no output repeats a bigram."""
    torch.manual_seed(0)
    model = build_model(MODELS[name].model_copy(update={"shared_embeddings": False}), 40, 12).eval()
    src, lens = batch(5)
    limit = torch.full_like(lens, 25)

    def decode(n: int) -> list[list[int]]:
        if how == "beam":
            return [h[0].tokens for h in beam_search(model, src, lens, limit, 3, no_repeat_ngram=n, min_length=24)]
        sampler = Sampler(torch.Generator().manual_seed(0)) if how == "sample" else None
        return generate(model, src, lens, limit, sampler, no_repeat_ngram=n, min_length=24)

    assert any(repeats(out, 2) for out in decode(0))  # without blocking the model repeats itself
    blocked = decode(2)
    assert not any(repeats(out, 2) for out in blocked)
    assert all(len(out) >= 20 for out in blocked)  # blocking narrows choices, it does not stop decoding


def test_min_length_defers_eos() -> None:
    torch.manual_seed(0)
    model = build_model(MODELS["gru_bahdanau"], 40, 40).eval()
    src, lens = batch(6)
    limit = torch.full_like(lens, 30)
    for out in generate(model, src, lens, limit, min_length=5):
        assert len(out) >= 5 and EOS not in out
    for hyps in beam_search(model, src, lens, limit, 3, min_length=5):
        assert len(hyps[0].tokens) >= 5


def test_sampling_is_reproducible_with_a_seed() -> None:
    torch.manual_seed(0)
    model = build_model(MODELS["transformer"], 40, 40).eval()
    src, lens = batch(7)
    limit = max_lengths(lens, 1.5, 6)

    def draw(seed: int, **kw) -> list[list[int]]:
        return generate(model, src, lens, limit, Sampler(torch.Generator().manual_seed(seed), **kw))

    assert draw(1, top_p=0.9, temperature=0.8) == draw(1, top_p=0.9, temperature=0.8)
    assert draw(1) != draw(2)  # the seed matters
    assert draw(3, top_k=1) == greedy(model, src, lens, limit)  # top-1 sampling is arg-max


def sequence_score(model, src: torch.Tensor, lens: torch.Tensor, tokens: list[int]) -> float:
    """Log-probability of `tokens` (EOS included when it ends one), normalised over the tokens search may
    generate (never PAD or BOS), one decoder step at a time."""
    state, total, prev = model.encode(src, lens), 0.0, torch.tensor([BOS])
    for tok in tokens:
        logits, state = model.decode_step(prev, state)
        logits[:, [PAD, BOS]] = float("-inf")
        total += float(logits.log_softmax(-1)[0, tok])
        prev = torch.tensor([tok])
    return total


@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_a_beam_as_wide_as_the_search_space_finds_the_best_output(alpha: float) -> None:
    """Eight target tokens (six a search may write, and EOS), cap 4: every output of at most three tokens is
    enumerated and scored; beam search with room for all of them returns the best by length-penalised
    log-probability, with that score."""
    torch.manual_seed(0)
    model = build_model(MODELS["gru_bahdanau"].model_copy(update={"shared_embeddings": False}), 40, 8).eval()
    src, lens = batch(9)
    cap, words = 4, [UNK, SEP, 5, 6, 7]
    outputs = [[EOS]] + [[w, EOS] for w in words] + [[a, b, EOS] for a in words for b in words]
    outputs += [[a, b, c] for a in words for b in words for c in words]  # the cap ends them
    for i in range(src.size(0)):
        one, n = src[i : i + 1, : lens[i]], lens[i : i + 1]
        with torch.no_grad():
            scored = [
                (sequence_score(model, one, n, out) / length_penalty(torch.tensor(len(out)), alpha), out)
                for out in outputs
            ]
        best_score, best = max(scored, key=lambda pair: float(pair[0]))
        hyp = beam_search(model, one, n, torch.tensor([cap]), beam_size=64, alpha=alpha)[0][0]
        assert hyp.tokens == [tok for tok in best if tok != EOS]
        assert hyp.score == pytest.approx(float(best_score), abs=1e-4)


def test_a_sentence_ends_once_k_hypotheses_have_finished() -> None:
    """With a model that often ends early, sentences leave long before their caps, each with k different
    finished hypotheses; every step decodes k rows per live sentence."""
    torch.manual_seed(0)
    model = build_model(MODELS["transformer"], 40, 40).eval()
    rows_seen = []

    def step(prev: torch.Tensor, state):
        rows_seen.append(prev.size(0))
        logits, state = type(model).decode_step(model, prev, state)
        logits[:, EOS] += 3.0  # EOS likely, not certain
        return logits, state

    model.decode_step = step
    src, lens = batch(10)
    beams = beam_search(model, src, lens, torch.full_like(lens, 30), beam_size=4, n_best=4)
    assert all(rows % 4 == 0 for rows in rows_seen)
    assert len(rows_seen) < 15  # caps of 30: the last step would be the 29th
    assert all(len({tuple(h.tokens) for h in hyps}) == 4 for hyps in beams)
