"""RNN encoder-decoder with attention: one encoder and one decoder, each with a configurable `cell`."""

from __future__ import annotations

import math
from typing import ClassVar, Literal

import torch
from pydantic import Field, model_validator
from torch import Tensor, nn

from seqforge.data.tokenizer import PAD
from seqforge.models.attention import Attention
from seqforge.models.base import DecoderState, FamilyCfg, Seq2Seq
from seqforge.models.dropout import Dropout, dropout
from seqforge.models.embeddings import make_embeddings
from seqforge.models.registry import register_family

CELLS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}
STEPS = {"rnn": torch.rnn_tanh_cell, "lstm": torch.lstm_cell, "gru": torch.gru_cell}  # one time step, same weights
FUSED = {"rnn": torch.rnn_tanh, "lstm": torch.lstm, "gru": torch.gru}  # nn.RNN's own calls: one layer, one direction


def reversal(lens: Tensor, length: int) -> Tensor:
    """Positions (B, S) that put each row's first `lens` in reverse order and leave its padding where it is
    (for `gather`; its own inverse)."""
    positions = torch.arange(length, device=lens.device)[None, :]
    return torch.where(positions < lens[:, None], lens[:, None] - 1 - positions, positions)


class RNNModelCfg(FamilyCfg):
    """An RNN encoder-decoder: vanilla, LSTM or GRU cells, a (bi)directional encoder, attention."""

    arch: Literal["rnn"]  # the family
    cell: Literal["rnn", "lstm", "gru"] = "gru"  # the recurrent cell of encoder and decoder
    emb_dim: int = Field(256, gt=0)  # embedding size
    hidden_dim: int = Field(512, gt=0)  # decoder state size (and the encoder's, per direction, by default)
    enc_hidden_dim: int | None = Field(None, gt=0)  # encoder size per direction (None: hidden_dim); OpenNMT-py's
    # brnn with hidden 512 is 256 per direction
    enc_layers: int = Field(1, ge=1)  # stacked encoder layers
    dec_layers: int = Field(1, ge=1)  # stacked decoder layers
    bidirectional: bool = True  # the encoder reads the source both ways
    # none: the plain encoder-decoder (the encoder's final state, bridged into the decoder, is all it reads)
    attention: Literal["bahdanau", "luong_dot", "luong_general", "luong_concat", "none"] = "bahdanau"
    input_feeding: bool = True  # the previous attentional vector is fed back into the decoder (Luong et al.)
    dropout: float = Field(0.3, ge=0.0, lt=1.0)  # on embeddings and states
    tied_embeddings: bool = True  # the output projection shares the target embedding's weights
    shared_embeddings: bool = False  # one embedding for source and target (needs a joint vocabulary)

    @model_validator(mode="after")
    def _feeding_needs_attention(self) -> RNNModelCfg:
        if self.attention == "none" and self.input_feeding:
            raise ValueError(
                "input_feeding feeds the attentional vector back: set input_feeding: false with attention: none"
            )
        return self


@register_family("rnn")
class RNNSeq2Seq(Seq2Seq):
    """(Bi)directional RNN encoder; RNN decoder that attends after each step (Luong-style flow).

    Decoder step: ``h_t = cell([y_{t-1}; h~_{t-1}], h_{t-1})`` (input feeding optional),
    ``c_t = attention(h_t, encoder states)``, ``h~_t = tanh(W [h_t; c_t])``, logits from ``h~_t``.
    Without input feeding nothing feeds back, so teacher forcing runs the decoder RNN once over the
    whole target (one fused call) and attends from every position at once; with it, step by step.
    Hidden states stay in the RNN's own (layers, N, H) layout between steps.
    """

    config = RNNModelCfg
    width: ClassVar[dict[str, int]] = {"model.hidden_dim": 1}
    hyp_dims: ClassVar[dict[str, int]] = {"hidden": 1, "cell": 1}  # nn.RNN's (layers, N, H)

    @classmethod
    def describe(cls, cfg: dict) -> str:
        direction = "bidirectional " if cfg["bidirectional"] else ""
        return (
            f"{direction}{cfg['cell'].upper()} encoder-decoder, {cfg['enc_layers']}+{cfg['dec_layers']} layers, "
            f"hidden {cfg['hidden_dim']}, embeddings {cfg['emb_dim']}, "
            + ("no attention" if cfg["attention"] == "none" else f"{cfg['attention']} attention")
        )

    def __init__(self, cfg: RNNModelCfg, src_vocab: int, tgt_vocab: int) -> None:
        super().__init__()
        self.cfg = cfg
        rnn_cls = CELLS[cfg.cell]
        self.src_embed, self.tgt_embed = make_embeddings(src_vocab, tgt_vocab, cfg.emb_dim, cfg.shared_embeddings)
        self.emb_scale = math.sqrt(cfg.emb_dim)
        self.dropout = Dropout(cfg.dropout)
        enc_hidden = cfg.enc_hidden_dim or cfg.hidden_dim
        self.encoder = rnn_cls(
            cfg.emb_dim,
            enc_hidden,
            num_layers=cfg.enc_layers,
            batch_first=True,
            bidirectional=cfg.bidirectional,
            dropout=cfg.dropout if cfg.enc_layers > 1 else 0.0,
        )
        enc_dim = enc_hidden * (2 if cfg.bidirectional else 1)
        self.bridge = nn.Linear(enc_dim, cfg.dec_layers * cfg.hidden_dim)
        dec_in = cfg.emb_dim + (cfg.hidden_dim if cfg.input_feeding else 0)
        self.decoder = rnn_cls(
            dec_in,
            cfg.hidden_dim,
            num_layers=cfg.dec_layers,
            batch_first=True,
            dropout=cfg.dropout if cfg.dec_layers > 1 else 0.0,
        )
        self.has_cross_attention = cfg.attention != "none"
        if self.has_cross_attention:
            self.attention = Attention(cfg.attention, cfg.hidden_dim, enc_dim, cfg.hidden_dim)
            self.att_out = nn.Linear(cfg.hidden_dim + enc_dim, cfg.hidden_dim, bias=False)
        out_dim = cfg.emb_dim if cfg.tied_embeddings else cfg.hidden_dim
        self.pre_output = nn.Linear(cfg.hidden_dim, out_dim) if out_dim != cfg.hidden_dim else nn.Identity()
        self.output = nn.Linear(out_dim, tgt_vocab, bias=False)
        if cfg.tied_embeddings:
            self.output.weight = self.tgt_embed.weight

    # -- encoder ---------------------------------------------------------------------------
    def encode(self, src: Tensor, src_lens: Tensor) -> DecoderState:
        """Run the encoder and build the initial decoding state.

        Each layer and direction is one fused RNN call over the right-padded batch, the backward direction
        over each sentence reversed within its length, so padding only ever follows a sentence and never
        reaches its states. The same numbers as packed sequences, without their per-step slicing, whose
        backward zero-fills a (source tokens, gates) buffer at every time step; on CPU an LSTM also takes
        oneDNN's fused kernel, which packed input cannot. (On CUDA, cuDNN copies one direction's weights out
        of the module's flat buffer at each call, and warns once that they are not one contiguous chunk.)"""
        emb = self.dropout(self.src_embed(src) * self.emb_scale)
        lens = src_lens.to(src.device)
        valid = torch.arange(src.size(1), device=src.device)[None, :] < lens[:, None]  # (B, S)
        run, rows = FUSED[self.cfg.cell], torch.arange(src.size(0), device=src.device)
        backward = reversal(lens, src.size(1))[..., None]  # (B, S, 1)
        x = emb
        for layer in range(self.cfg.enc_layers):
            if layer:
                x = dropout(x, self.encoder.dropout, self.training)
            outputs, finals = [], []
            for direction in range(self._dirs):
                weights = self.encoder.all_weights[layer * self._dirs + direction]
                h0 = x.new_zeros(1, src.size(0), self.encoder.hidden_size)
                hx = (h0, h0) if self.cfg.cell == "lstm" else h0
                inp = x if direction == 0 else x.gather(1, backward.expand_as(x))
                out = run(inp, hx, weights, True, 1, 0.0, self.training, False, True)[0]  # (B, S, H)
                finals.append(out[rows, lens - 1])  # the state after the last real token it read
                outputs.append(out if direction == 0 else out.gather(1, backward.expand_as(out)))
            x = torch.cat(outputs, dim=-1)
        return self._initial_state(src, x.masked_fill(~valid[..., None], 0.0), finals)

    @property
    def _dirs(self) -> int:
        return 2 if self.cfg.bidirectional else 1

    def _initial_state(self, src: Tensor, enc_out: Tensor, finals: list[Tensor]) -> DecoderState:
        """Decoding state from the encoder's outputs (B, S, dirs*H) and its top layer's final state per
        direction (B, H each), which the bridge turns into the decoder's initial hidden state."""
        hidden = torch.tanh(self.bridge(torch.cat(finals, dim=-1))).view(src.size(0), self.cfg.dec_layers, -1)
        hidden = hidden.transpose(0, 1).contiguous()  # (layers, B, H)
        hyps = {"hidden": hidden}
        if self.cfg.cell == "lstm":
            hyps["cell"] = hidden
        memory = {"mask": src != PAD}
        if self.has_cross_attention:
            hyps["att_vec"] = enc_out.new_zeros(src.size(0), self.cfg.hidden_dim)
            memory |= {"keys": enc_out, "proj_keys": self.attention.project_keys(enc_out)}
        return DecoderState(memory, hyps)

    def _encode_unrolled(self, src: Tensor, src_lens: Tensor) -> tuple[Tensor, list[Tensor], list[Tensor], Tensor]:
        """The encoder as `encode` computes it, one cell step at a time on the same weights, so each state
        is its own tensor that gradients reach through the recurrence: outputs (B, S, dirs*H), the top
        layer's final state per direction, its states (one (B, H) tensor per direction and position) and
        their distances from the position where their direction ends, (states, B), -1 at padding."""
        emb = self.dropout(self.src_embed(src) * self.emb_scale)
        batch, length = src.shape
        positions = torch.arange(length, device=src.device)
        valid = positions[None, :] < src_lens.to(src.device)[:, None]  # (B, S)
        lstm, step = self.cfg.cell == "lstm", STEPS[self.cfg.cell]
        x = emb
        for layer in range(self.cfg.enc_layers):
            if layer:
                x = dropout(x, self.encoder.dropout, self.training)
            outputs, finals, states, distances = [], [], [], []
            for direction in range(self._dirs):
                weights = self.encoder.all_weights[layer * self._dirs + direction]
                h = c = x.new_zeros(batch, self.encoder.hidden_size)
                column: list[Tensor] = [h] * length
                order = range(length) if direction == 0 else range(length - 1, -1, -1)
                for t in order:  # padding leaves the state as it is: zeros before a backward pass starts
                    keep = valid[:, t, None]
                    if lstm:
                        h_t, c_t = step(x[:, t], (h, c), *weights)
                        c = torch.where(keep, c_t, c)
                    else:
                        h_t = step(x[:, t], h, *weights)
                    h = column[t] = torch.where(keep, h_t, h)
                    states.append(h)
                    ends = src_lens.to(src.device) - 1 - t if direction == 0 else positions.new_full((batch,), t)
                    distances.append(torch.where(valid[:, t], ends, -1))
                outputs.append(torch.stack(column, dim=1))
                finals.append(h)
            x = torch.cat(outputs, dim=-1).masked_fill(~valid[..., None], 0.0)  # as `encode`: zeros at padding
        return x, finals, states, torch.stack(distances)

    def probe_states(self, src: Tensor, src_lens: Tensor, tgt_in: Tensor) -> tuple[Tensor, list[Tensor], Tensor]:
        """Teacher-forced logits through the unrolled encoder, the top layer's states and their distances
        from the source end (see `Seq2Seq.probe_states`)."""
        enc_out, finals, states, distances = self._encode_unrolled(src, src_lens)
        state = self._initial_state(src, enc_out, finals)
        return self._logits(self._decode_forced(state, tgt_in)[0]), states, distances

    # -- decoder ---------------------------------------------------------------------------
    def _rnn_state(self, hyps: dict[str, Tensor]) -> Tensor | tuple[Tensor, Tensor]:
        return (hyps["hidden"], hyps["cell"]) if self.cfg.cell == "lstm" else hyps["hidden"]

    def _attend(self, out: Tensor, memory: dict[str, Tensor]) -> tuple[Tensor, Tensor | None]:
        """Decoder outputs (B, Q, H) -> attentional vectors (B, Q, H) and attention weights (B, Q, S);
        without attention the decoder's output itself (and no weights)."""
        if not self.has_cross_attention:
            return out, None
        context, weights = self.attention(out, memory["keys"], memory["proj_keys"], memory["mask"])
        return torch.tanh(self.att_out(self.dropout(torch.cat([out, context], -1)))), weights

    def _cell_step(self, x: Tensor, hyps: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        """The stacked decoder RNN over one time step, x (N, in) -> top output (N, H) and new hidden
        state. Cell kernels on the decoder's own weights: one step of the fused RNN call costs far more
        (forward and backward) for the same numbers."""
        lstm, step = self.cfg.cell == "lstm", STEPS[self.cfg.cell]
        hidden, cells = [], []
        for layer, weights in enumerate(self.decoder.all_weights):
            if layer:  # nn.RNN's dropout between stacked layers
                x = dropout(x, self.decoder.dropout, self.training)
            if lstm:
                x, c = step(x, (hyps["hidden"][layer], hyps["cell"][layer]), *weights)
                cells.append(c)
            else:
                x = step(x, hyps["hidden"][layer], *weights)
            hidden.append(x)
        grown = {"hidden": torch.stack(hidden)}
        if lstm:
            grown["cell"] = torch.stack(cells)
        return x, grown

    def _recur(self, emb: Tensor, state: DecoderState) -> tuple[Tensor, Tensor | None, DecoderState]:
        """One decoder step for every hypothesis: emb (N, E) -> attentional vector (N, H),
        attention weights (N, S) and the next state."""
        hyps = state.hyps
        rnn_in = torch.cat([emb, hyps["att_vec"]], -1) if self.cfg.input_feeding else emb
        out, grown = self._cell_step(rnn_in, hyps)
        sentences = state.memory["mask"].size(0)
        att_vec, weights = self._attend(out.view(sentences, -1, out.size(-1)), state.memory)
        att_vec = att_vec.flatten(0, 1)
        if self.has_cross_attention:
            grown["att_vec"], weights = att_vec, weights.flatten(0, 1)
        return att_vec, weights, DecoderState(state.memory, grown)

    def _logits(self, att_vec: Tensor) -> Tensor:
        return self.output(self.pre_output(self.dropout(att_vec)))

    def decode_step(self, prev_tokens: Tensor, state: DecoderState) -> tuple[Tensor, DecoderState]:
        """Logits of the next token given the previous one, (N, V)."""
        att_vec, _, state = self._recur(self.tgt_embed(prev_tokens) * self.emb_scale, state)
        return self._logits(att_vec).float(), state

    def _decode_forced(self, state: DecoderState, tgt_in: Tensor) -> tuple[Tensor, Tensor | None]:
        """Attentional vectors (B, T, H) and attention weights (B, T, S; None without attention) under
        teacher forcing from the encoder's `state`."""
        embs = self.dropout(self.tgt_embed(tgt_in) * self.emb_scale)
        if not self.cfg.input_feeding:
            out, _ = self.decoder(embs, self._rnn_state(state.hyps))
            return self._attend(out, state.memory)
        att_vecs, weights = [], []
        for emb in embs.unbind(1):  # one backward node for all steps (indexing [:, t] zero-fills (B, T, E) per step)
            att_vec, step_weights, state = self._recur(emb, state)
            att_vecs.append(att_vec)
            weights.append(step_weights)
        return torch.stack(att_vecs, dim=1), torch.stack(weights, dim=1)

    def forward(self, src: Tensor, src_lens: Tensor, tgt_in: Tensor) -> Tensor:
        """Teacher-forced logits (B, T, V)."""
        return self._logits(self._decode_forced(self.encode(src, src_lens), tgt_in)[0])

    def cross_attention(self, src: Tensor, src_lens: Tensor, tgt_in: Tensor) -> Tensor:
        """Encoder-decoder attention weights (B, T, S): row t is the step predicting token t+1."""
        if not self.has_cross_attention:
            raise ValueError("model.attention: none: this model has no encoder-decoder attention to show")
        return self._decode_forced(self.encode(src, src_lens), tgt_in)[1]
