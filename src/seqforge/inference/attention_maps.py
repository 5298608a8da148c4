"""Attention heatmaps: where a model looks in the source while it writes its own output."""

from __future__ import annotations

from pathlib import Path

import torch

from seqforge.data.batching import collate
from seqforge.data.tokenizer import SubwordTokenizer


@torch.no_grad()
def attention_matrix(model: torch.nn.Module, src_ids: list[int], out_ids: list[int]) -> torch.Tensor:
    """Encoder-decoder attention (T+1, S+1) of `model` teacher-forced on `out_ids`.

    Rows are the output tokens plus EOS, columns the source tokens plus EOS (as in training).
    """
    batch = collate([{"src_ids": src_ids, "tgt_ids": out_ids, "index": 0}])
    src, src_lens, tgt_in = (batch[key].to(next(model.parameters()).device) for key in ("src", "src_lens", "tgt_in"))
    return model.eval().cross_attention(src, src_lens, tgt_in)[0].float().cpu()


def heatmap(weights: torch.Tensor, src_tokens: list[str], out_tokens: list[str], title: str):
    """A matplotlib figure: output tokens (rows) × source tokens (columns)."""
    from matplotlib.figure import Figure  # no pyplot: no GUI backend, no global figure state

    rows, cols = weights.shape
    fig = Figure(figsize=(min(2.0 + 0.32 * cols, 24), min(1.6 + 0.3 * rows, 24)), layout="constrained")
    ax = fig.add_subplot()
    image = ax.imshow(weights.numpy(), cmap="Blues", vmin=0.0, aspect="auto")
    ax.set_xticks(range(cols), src_tokens, rotation=90, fontsize=8)
    ax.set_yticks(range(rows), out_tokens, fontsize=8)
    ax.set_xlabel("source tokens")
    ax.set_ylabel("output tokens")
    ax.set_title(title, fontsize=9)
    fig.colorbar(image, ax=ax, shrink=0.6)
    return fig


def save_attention_maps(
    model: torch.nn.Module,
    tokenizer: SubwordTokenizer,
    src_ids: list[list[int]],
    out_ids: list[list[int]],
    out_dir: Path,
    title: str,
) -> list[Path]:
    """One PNG per (source, output) pair in `out_dir` (`sample_00.png`, ...); returns the files."""
    out_dir.mkdir(parents=True, exist_ok=True)
    if not model.has_cross_attention:
        (out_dir / "none.txt").write_text(f"{title}: model.attention: none, no encoder-decoder attention to draw\n")
        return []
    files = []
    for i, (src, out) in enumerate(zip(src_ids, out_ids, strict=True)):
        weights = attention_matrix(model, src, out)
        fig = heatmap(
            weights,
            tokenizer.tokens(src, "source") + ["</s>"],
            tokenizer.tokens(out, "target") + ["</s>"],
            f"{title} — test sample {i}",
        )
        files.append(out_dir / f"sample_{i:02d}.png")
        fig.savefig(files[-1], dpi=110)
    return files
