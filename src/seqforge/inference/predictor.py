"""Inference: an exported model directory -> batched decoding of raw text, for any task.

The task's kind turns requests (sentences, conversations) into the source strings the model was
trained on, with the same cleaning as the prepare stage. A model directory is searched by the backend
its `model.json` names (`BACKENDS`): our PyTorch search, or CTranslate2 for an exported Transformer.
"""

from __future__ import annotations

import importlib
import json
import math
from pathlib import Path

import torch
import torch.nn.functional as F

from seqforge.config.base import ConfigError
from seqforge.config.shared import DecodeCfg
from seqforge.data.batching import collate
from seqforge.data.tokenizer import PAD, SubwordTokenizer
from seqforge.experiments.config import experiment_schema
from seqforge.inference.decoding import Sampler, beam_search, generate, max_lengths
from seqforge.models.base import Seq2Seq
from seqforge.models.registry import build_model
from seqforge.tasks.base import RequestError
from seqforge.tasks.registry import task_kind

BACKENDS = {  # model.json's `backend` -> its predictor class, imported when a model asks for it
    "pytorch": "seqforge.inference.predictor:Predictor",
    "ctranslate2": "seqforge.inference.ct2_predictor:CT2Predictor",
}


class Predictor:
    """Weights + tokenizer + decoding settings; `predict` takes and returns plain text. This class searches
    with PyTorch (`seqforge.inference.decoding`); other backends subclass it (`BACKENDS`)."""

    def __init__(
        self,
        model: Seq2Seq,
        tokenizer: SubwordTokenizer,
        meta: dict,
        decode_cfg: DecodeCfg | None = None,
    ) -> None:
        """The model moves to `decode_cfg.device` (auto: the GPU when there is one) in its precision."""
        self.tokenizer, self.meta = tokenizer, meta
        self.decode_cfg = decode_cfg or DecodeCfg()
        device = self.decode_cfg.device
        if device == "cuda" and not torch.cuda.is_available():
            raise ConfigError("decode.device: cuda, but this machine has no usable GPU (use auto or cpu)")
        self.device = torch.device(
            "cuda" if device == "cuda" or (device == "auto" and torch.cuda.is_available()) else "cpu"
        )
        dtype = torch.bfloat16 if self.decode_cfg.precision == "bf16" else torch.float32
        self.model = model.to(self.device, dtype).eval()
        self.max_source_tokens = model.max_source_tokens  # EOS included; None: no limit

    @staticmethod
    def read_meta(model_dir: Path | str) -> dict:
        """An exported model's `model.json` (configuration and provenance)."""
        model_dir = Path(model_dir)
        if not (model_dir / "model.json").is_file():
            raise FileNotFoundError(f"{model_dir}: no exported model here (model.json missing; run the train stage)")
        return json.loads((model_dir / "model.json").read_text())

    @classmethod
    def load(cls, model_dir: Path | str, decode_cfg: DecodeCfg | None = None) -> Predictor:
        """The predictor of an exported model directory, of the backend its `model.json` names."""
        model_dir = Path(model_dir)
        meta = cls.read_meta(model_dir)
        backend = meta.get("backend", "pytorch")
        if backend not in BACKENDS:
            raise ConfigError(f"{model_dir}/model.json: unknown backend {backend!r} (known: {', '.join(BACKENDS)})")
        module, _, name = BACKENDS[backend].partition(":")
        return getattr(importlib.import_module(module), name).from_dir(model_dir, meta, decode_cfg)

    @classmethod
    def from_dir(cls, model_dir: Path, meta: dict, decode_cfg: DecodeCfg | None) -> Predictor:
        """This backend's predictor of `model_dir`, whose `model.json` is `meta`."""
        exp = experiment_schema().model_validate(meta["experiment"])
        model = build_model(exp.model, meta["src_vocab"], meta["tgt_vocab"])
        model.load_state_dict(torch.load(model_dir / "model.pt", map_location="cpu", weights_only=True))
        return cls(model, SubwordTokenizer.load(model_dir / "tokenizer.json"), meta, decode_cfg)

    def generate_ids(self, src_ids: list[list[int]], cfg: DecodeCfg | None = None) -> list[list[list[int]]]:
        """n-best token ids per source, decoded in length-sorted batches (input order kept).

        Sampling draws from a generator seeded with `cfg.seed` at each call: the same inputs and
        seed give the same outputs.
        """
        cfg = cfg or self.decode_cfg
        sampler = None
        if cfg.strategy == "sample":
            generator = torch.Generator(self.device).manual_seed(cfg.seed)
            sampler = Sampler(generator, cfg.top_k, cfg.top_p, cfg.temperature)
        order = sorted(range(len(src_ids)), key=lambda i: len(src_ids[i]))
        out: list[list[list[int]]] = [[] for _ in src_ids]
        for start in range(0, len(order), cfg.batch_size):
            idx = order[start : start + cfg.batch_size]
            batch = collate([{"src_ids": src_ids[i], "index": i} for i in idx])
            src, src_lens = batch["src"].to(self.device), batch["src_lens"].to(self.device)
            limit = max_lengths(src_lens, cfg.max_len_ratio, cfg.max_len_offset)
            if sampler is not None or cfg.beam_size == 1:
                results = [
                    [hyp]
                    for hyp in generate(self.model, src, src_lens, limit, sampler, cfg.no_repeat_ngram, cfg.min_length)
                ]
            else:
                nbest = beam_search(
                    self.model,
                    src,
                    src_lens,
                    limit,
                    cfg.beam_size,
                    alpha=cfg.length_penalty,
                    n_best=cfg.n_best,
                    no_repeat_ngram=cfg.no_repeat_ngram,
                    min_length=cfg.min_length,
                    patience=cfg.patience,
                )
                results = [[h.tokens for h in hyps] for hyps in nbest]
            for i, hyps in zip(idx, results, strict=True):
                out[i] = hyps
        return out

    def encode(self, sources: list[str], max_tokens: int | None = None) -> list[list[int]]:
        """Source token ids; a `RequestError` names the first row over `max_tokens` (serving's limit) or
        longer than the model can encode."""
        ids = self.tokenizer.encode(sources, "source")
        limit, what = max_tokens, "serve.max_tokens"
        positions = self.max_source_tokens
        if positions is not None and (limit is None or positions - 1 < limit):  # EOS takes one position
            limit, what = positions - 1, f"model.max_positions {positions}, EOS included"
        for i, row in enumerate(ids):
            if limit is not None and len(row) > limit:
                raise RequestError(
                    f"row {i}: {len(row)} tokens after tokenisation, more than the limit of {limit} ({what})"
                )
        return ids

    @torch.no_grad()
    def perplexity(self, src_ids: list[list[int]], tgt_ids: list[list[int]], batch_size: int) -> float:
        """Per-target-token perplexity under teacher forcing (subword tokens, EOS included)."""
        order = sorted(range(len(src_ids)), key=lambda i: len(src_ids[i]))
        loss_sum, n_tokens = 0.0, 0
        for start in range(0, len(order), batch_size):
            batch = collate(
                [{"src_ids": src_ids[i], "tgt_ids": tgt_ids[i], "index": i} for i in order[start : start + batch_size]]
            )
            batch = {key: value.to(self.device) for key, value in batch.items()}
            logits = self.model(batch["src"], batch["src_lens"], batch["tgt_in"])
            loss_sum += float(
                F.cross_entropy(
                    logits.flatten(0, 1).float(), batch["tgt_out"].flatten(), ignore_index=PAD, reduction="sum"
                )
            )
            n_tokens += int((batch["tgt_out"] != PAD).sum())
        return math.exp(loss_sum / max(n_tokens, 1))

    def predict(self, requests: list, cfg: DecodeCfg | None = None, max_tokens: int | None = None) -> list[str]:
        """One output per checked request (a sentence, a conversation), prepared as in training."""
        return self.outputs(self.request_ids(requests, max_tokens), cfg)

    def request_ids(self, requests: list, max_tokens: int | None = None) -> list[list[int]]:
        """Checked requests as source token ids, prepared as in training; a `RequestError` names a row over
        `max_tokens` (`encode`)."""
        return self.encode(task_kind(self.meta["kind"]).sources(requests, self.meta), max_tokens)

    def outputs(self, src_ids: list[list[int]], cfg: DecodeCfg | None = None) -> list[str]:
        """The best output's text for each source."""
        return self.tokenizer.decode([hyps[0] for hyps in self.generate_ids(src_ids, cfg)], "target")
