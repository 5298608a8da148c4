"""What every model family implements: its `model:` config, the incremental-decoding protocol, the state
it carries, and a one-line description."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from torch import Tensor, nn

from seqforge.config.base import Strict


class FamilyCfg(Strict):
    """The `model:` section every family's config extends (with `arch: Literal["<family>"]`)."""

    arch: str  # the model family (a registered one: `rnn`, `transformer`)
    tied_embeddings: bool = True  # the output projection shares the target embedding's weights
    shared_embeddings: bool = False  # one embedding for source and target (needs a joint vocabulary)


@dataclass(frozen=True)
class DecoderState:
    """What search carries from one decoder step to the next.

    - ``memory``: per source sentence, first dimension B (encoder outputs, projected keys, masks).
      Every hypothesis of a sentence reads the same rows, so beams never copy them.
    - ``hyps``: per hypothesis (B × beam rows), in the layout the model computes with; the model's
      :meth:`Seq2Seq.reorder_state` knows which dimension holds the hypotheses.
    """

    memory: dict[str, Tensor]
    hyps: dict[str, Tensor]


class Seq2Seq(nn.Module):
    """An encoder-decoder search can drive: ``encode`` once, then ``decode_step`` per token.

    Hypotheses of one sentence are consecutive rows: with B sentences in ``memory`` and N rows in
    ``hyps``, rows b·k .. b·k + k - 1 (k = N / B) belong to sentence b.
    """

    config: ClassVar[type[FamilyCfg]]  # the family's `model:` schema (models.registry registers it)
    width: ClassVar[dict[str, int]]  # the study sizes these keys to a parameter budget, as multiples of one width
    hyp_dims: ClassVar[dict[str, int]] = {}  # hypothesis dimension of each `hyps` tensor, when it is not 0
    max_decode_steps: int | None = None  # longest output the model can represent (None: unbounded)
    max_source_tokens: int | None = None  # longest source, EOS included, the model can encode (None: unbounded)

    has_cross_attention: bool = True  # False: nothing to draw as an attention map (plain encoder-decoder)

    @classmethod
    def describe(cls, cfg: dict) -> str:
        """One line for the registered model's description, e.g. `bidirectional GRU encoder-decoder, ...`."""
        raise NotImplementedError

    def probe_states(self, src: Tensor, src_lens: Tensor, tgt_in: Tensor) -> tuple[Tensor, list[Tensor], Tensor]:
        """Teacher-forced logits (B, T, V) computed so that every encoder state of the top layer is its
        own tensor in the graph (one (B, H) tensor per direction and position): the gradient of the loss
        with respect to each is the total one, through the recurrence as well as through attention.
        Also each state's distance from the source end its direction finishes at (0: the last state
        read), shape (states, B), -1 at padding."""
        raise NotImplementedError

    def encode(self, src: Tensor, src_lens: Tensor) -> DecoderState:
        """Encoder pass; the returned state holds one hypothesis per sentence."""
        raise NotImplementedError

    def decode_step(self, prev_tokens: Tensor, state: DecoderState) -> tuple[Tensor, DecoderState]:
        """Float32 logits (N, V) of the token after `prev_tokens` (N,), and the state grown by it. Search
        normalises them after its own restrictions (log-probabilities work too: normalising leaves them as they are)."""
        raise NotImplementedError

    def reorder_state(self, state: DecoderState, index: Tensor, sentences: Tensor | None = None) -> DecoderState:
        """Keep hypothesis rows `index` (in that order); with `sentences`, keep only those sentences'
        memory too (finished sentences leave the batch). `index` must then number rows of the kept
        sentences in the same order, consecutively per sentence."""
        hyps = {key: value.index_select(self.hyp_dims.get(key, 0), index) for key, value in state.hyps.items()}
        memory = (
            state.memory
            if sentences is None
            else {key: value.index_select(0, sentences) for key, value in state.memory.items()}
        )
        return DecoderState(memory, hyps)
