from pathlib import Path

import pytest

from seqforge.config.shared import TokenizerCfg
from seqforge.data.text import normalize
from seqforge.data.tokenizer import SubwordTokenizer

SOURCES = [
    "Two young, White males are outside near many bushes.",
    "A little girl climbing into a wooden playhouse.",
    "Several men in hard hats are operating a giant pulley system.",
] * 20
TARGETS = [
    "Zwei junge weiße Männer sind im Freien in der Nähe vieler Büsche.",
    "Ein kleines Mädchen klettert in ein Spielhaus aus Holz.",
    "Mehrere Männer mit Schutzhelmen bedienen ein Antriebsradsystem.",
] * 20


@pytest.mark.parametrize("model", ["bpe", "unigram"])
@pytest.mark.parametrize("joint", [True, False])
def test_round_trip_and_save_load(tmp_path, model: str, joint: bool) -> None:
    cfg = TokenizerCfg(model=model, vocab_size=120, joint=joint, min_frequency=1)
    tok = SubwordTokenizer.train(SOURCES, TARGETS, cfg)
    unseen = ["A girl near many men.", "Zwei  Männer\tim Freien ."]
    for side, texts in (("source", SOURCES[:3] + unseen[:1]), ("target", TARGETS[:3] + unseen[1:])):
        texts = [normalize(t) for t in texts]  # the data path normalises before tokenizing
        assert tok.decode(tok.encode(texts, side), side) == texts
    tok.save(tmp_path / "tokenizer.json")
    loaded = SubwordTokenizer.load(tmp_path / "tokenizer.json")
    assert loaded.joint == joint
    assert loaded.encode(TARGETS[:3], "target") == tok.encode(TARGETS[:3], "target")
    assert (loaded.vocab_size("source") == loaded.vocab_size("target")) or not joint


def test_decomposed_unicode_reaches_the_subword_model_composed() -> None:
    """The subword models have no normaliser of their own: the task composes text at inference,
    as prepare does for training, so `a` + combining diaeresis is the `ä` the model learned."""
    from seqforge.tasks.registry import task_kind

    tok = SubwordTokenizer.train(SOURCES, TARGETS, TokenizerCfg(vocab_size=120, min_frequency=1))
    (served,) = task_kind("translation").sources(
        ["Ma\u0308dchen  klettert "], {"task": {"data": {"normalization": "nfc"}}}
    )
    assert served == "Mädchen klettert"
    assert tok.decode(tok.encode([served], "target"))[0] == "Mädchen klettert"


def test_load_rejects_other_files(tmp_path) -> None:
    (tmp_path / "x.json").write_text('{"format": "other"}')
    with pytest.raises(ValueError, match="x.json: not a seqforge-tokenizer/2 file"):
        SubwordTokenizer.load(tmp_path / "x.json")


DATA = Path(__file__).parent / "data"


@pytest.mark.parametrize("sample", ["ko_en.tsv", "zh_en.tsv"])
@pytest.mark.parametrize("model", ["unigram", "bpe"])
def test_sentencepiece_round_trips_cjk_exactly(tmp_path, sample: str, model: str) -> None:
    pairs = [line.split("\t") for line in (DATA / sample).read_text(encoding="utf-8").splitlines()]
    sources, targets = [p[0] for p in pairs], [p[1] for p in pairs]
    cfg = TokenizerCfg(library="sentencepiece", model=model, vocab_size=300, joint=True)
    tok = SubwordTokenizer.train(sources, targets, cfg)
    unseen = ["鬱陶しい天気です。", "맑은 하늘 아래 鬱", "Zwei Männer"]  # characters never seen in training
    texts = [normalize(t) for t in sources + targets + unseen]
    ids = tok.encode(texts, "source")
    assert tok.decode(ids, "source") == texts  # byte fallback: nothing becomes <unk>
    assert all(1 not in row for row in ids)
    tok.save(tmp_path / "tokenizer.json")
    assert SubwordTokenizer.load(tmp_path / "tokenizer.json").encode(texts, "target") == ids


@pytest.mark.parametrize("library", ["tokenizers", "sentencepiece"])
def test_special_token_strings_in_text_stay_plain_text(library: str) -> None:
    """`</s>` or `<sep>` typed by a user must not become EOS or the turn separator: the data path
    spaces them apart, in prepare and at serving alike."""
    from seqforge.data.tokenizer import SEP, SPECIALS
    from seqforge.tasks.chatbot import SEP_TEXT, build_context

    texts = [normalize(t) for t in SOURCES[:3] + TARGETS[:3]] + ["what does < /s > mean ?"]
    tok = SubwordTokenizer.train(texts * 5, texts * 5, TokenizerCfg(library=library, vocab_size=120, min_frequency=1))
    typed = [normalize(f"an {s} here, and{s}there") for s in SPECIALS]
    assert all(s not in t for s in SPECIALS for t in typed)
    assert not any(i < len(SPECIALS) and i != 1 for row in tok.encode(typed, "source") for i in row)  # 1: <unk>
    (context,) = tok.encode([build_context([normalize("a <sep> b"), "c"], 100)], "source")
    assert context.count(SEP) == 1 and SEP_TEXT.strip() in build_context(["a", "c"], 100)
