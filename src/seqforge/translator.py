"""Inference: an exported model directory -> batched beam-search translation of raw text."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from seqforge.config import DecodeCfg, ExperimentCfg
from seqforge.data.batching import collate
from seqforge.data.prepare import normalize
from seqforge.data.tokenizer import SubwordTokenizer
from seqforge.decoding import beam_search, greedy, max_lengths
from seqforge.models import build_model


class Translator:
    """Weights + tokenizer + decoding settings; `translate` takes and returns plain text."""

    def __init__(
        self, model: torch.nn.Module, tokenizer: SubwordTokenizer, meta: dict,
        decode_cfg: DecodeCfg | None = None,
    ) -> None:
        self.model, self.tokenizer, self.meta = model.eval(), tokenizer, meta
        self.decode_cfg = decode_cfg or DecodeCfg()

    @classmethod
    def load(cls, model_dir: Path | str, decode_cfg: DecodeCfg | None = None) -> Translator:
        model_dir = Path(model_dir)
        if not (model_dir / "model.json").is_file():
            raise FileNotFoundError(f"{model_dir}: no exported model here (model.json missing; run the train stage)")
        meta = json.loads((model_dir / "model.json").read_text())
        exp = ExperimentCfg.model_validate(meta["experiment"])
        model = build_model(exp.model, meta["src_vocab"], meta["tgt_vocab"])
        model.load_state_dict(torch.load(model_dir / "model.pt", map_location="cpu", weights_only=True))
        return cls(model, SubwordTokenizer.load(model_dir / "tokenizer.json"), meta, decode_cfg)

    def translate_ids(self, src_ids: list[list[int]], cfg: DecodeCfg | None = None) -> list[list[list[int]]]:
        """n-best token ids per source, decoded in length-sorted batches (input order kept)."""
        cfg = cfg or self.decode_cfg
        order = sorted(range(len(src_ids)), key=lambda i: len(src_ids[i]))
        out: list[list[list[int]]] = [[] for _ in src_ids]
        for start in range(0, len(order), cfg.batch_size):
            idx = order[start : start + cfg.batch_size]
            batch = collate([{"src_ids": src_ids[i], "index": i} for i in idx])
            limit = max_lengths(batch["src_lens"], cfg.max_len_ratio, cfg.max_len_offset)
            if cfg.beam_size == 1:
                results = [[hyp] for hyp in greedy(self.model, batch["src"], batch["src_lens"], limit)]
            else:
                nbest = beam_search(self.model, batch["src"], batch["src_lens"], limit,
                                    cfg.beam_size, cfg.length_penalty, cfg.n_best)
                results = [[h.tokens for h in hyps] for hyps in nbest]
            for i, hyps in zip(idx, results, strict=True):
                out[i] = hyps
        return out

    def translate(self, sentences: list[str], cfg: DecodeCfg | None = None) -> list[list[str]]:
        """n-best detokenized translations per input sentence."""
        src_ids = self.tokenizer.encode([normalize(s) for s in sentences], "source")
        nbest = self.translate_ids(src_ids, cfg)
        return [self.tokenizer.decode(hyps, "target") for hyps in nbest]
