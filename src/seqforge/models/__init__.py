"""Model families behind one interface (`models.base.Seq2Seq`: `encode`, `decode_step`, `reorder_state`,
`forward`, `cross_attention`) and a factory."""

from __future__ import annotations

from torch import nn

from seqforge.config import ConfigError, RNNModelCfg, TransformerModelCfg
from seqforge.models.base import Seq2Seq


def build_model(
    cfg: RNNModelCfg | TransformerModelCfg, src_vocab: int, tgt_vocab: int
) -> Seq2Seq:
    """Instantiate the model described by `cfg` for the given vocabulary sizes."""
    if cfg.shared_embeddings and src_vocab != tgt_vocab:
        raise ConfigError(
            f"model.shared_embeddings: needs one joint vocabulary (tokenizer.joint: true); "
            f"got source {src_vocab} and target {tgt_vocab} entries"
        )
    if cfg.arch == "rnn":
        from seqforge.models.rnn import RNNSeq2Seq

        return RNNSeq2Seq(cfg, src_vocab, tgt_vocab)
    from seqforge.models.transformer import TransformerSeq2Seq

    return TransformerSeq2Seq(cfg, src_vocab, tgt_vocab)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
