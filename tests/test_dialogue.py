"""DailyDialog -> (context, response) pairs; dialogue metrics on hand-made examples."""

from __future__ import annotations

import hashlib
import io
import math
import zipfile
from pathlib import Path

import pytest

from helpers import ROOT, pairs_of
from seqforge.corpora import fetch
from seqforge.corpora.base import CorpusError
from seqforge.corpora.registry import CorpusCfg, load_corpus
from seqforge.tasks.chatbot import ChatbotTask, ChatData, build_context, dialogue_pairs, turn_cleaner
from seqforge.tasks.metrics import dialogue_scores, distinct_n, sentence_bleu_n

DIALOGUES = {
    "train": [
        "Hi , how are you ? __eou__ Fine , thanks . And you ? __eou__ I ’ m great . __eou__ Good to hear . __eou__",
        "Where is the station ? __eou__ Turn left . __eou__",
        "no separator here",  # malformed: no __eou__
        "Only one turn . __eou__",  # malformed: a single turn
        "Where is the station ? __eou__ Turn left . __eou__",  # duplicate dialogue -> duplicate pairs
    ],
    "validation": [
        "Where is the station ? __eou__ Turn left . __eou__",  # also in train: dropped (no leak)
        "Can I help you ? __eou__ Yes , a coffee please . __eou__",
    ],
    "test": ["What time is it ? __eou__ It ’ s five . __eou__ Thanks ! __eou__"],
}


def write_corpus(root: Path, dialogues: dict[str, list[str]] = DIALOGUES) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for split, lines in dialogues.items():
        (root / f"{split}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def test_turns_read_naturally() -> None:
    """DailyDialog's tokenized turns are detokenized; another dialogue format's are only normalised."""
    clean = turn_cleaner("dailydialog", "nfc")
    assert clean("I ’ Ve got it , haven ’ t I ? ") == "I've got it, haven't I?"
    assert clean('He said " hello " . ') == 'He said "hello".'
    assert turn_cleaner("jsonl", "nfc")("He said ,  hello . ") == "He said , hello ."


def test_context_window_keeps_the_newest_turns() -> None:
    turns = ["one two", "three", "four five six", "seven"]
    pairs, _ = dialogue_pairs(turns, ChatData(context_turns=2, max_context_tokens=100))
    assert [p["source"] for p in pairs] == ["one two", "one two <sep> three", "three <sep> four five six"]
    assert [p["target"] for p in pairs] == ["three", "four five six", "seven"]
    # over the token budget the oldest turn goes first; a too-long newest turn keeps its end
    assert build_context(["a b c", "d e"], max_tokens=3) == "d e"
    assert build_context(["a b c d e"], max_tokens=2) == "d e"


DD = CorpusCfg(name="dd", format="dailydialog", files={"train.txt": "", "validation.txt": "", "test.txt": ""})


def chatbot(**data) -> ChatbotTask:
    return ChatbotTask(name="chat", kind="chatbot", corpus="dd", data=ChatData(**data))


def test_pairs_split_by_dialogue_with_counts(tmp_path) -> None:
    splits, stats = pairs_of(DD, write_corpus(tmp_path / "dd"), chatbot(context_turns=2), tmp_path)
    train = splits["train"].to_list()
    assert {"source": "Hi, how are you? <sep> Fine, thanks. And you?", "target": "I'm great."} in train
    assert stats["train"]["malformed_lines"] == 2 and stats["train"]["dropped_duplicate"] == 1
    assert stats["train"]["kept"] == 4 == len(train)
    # the validation dialogue that also occurs in train is dropped, so nothing leaks
    assert stats["validation"]["dropped_dialogue_in_train"] == 1
    assert splits["validation"].to_list() == [{"source": "Can I help you?", "target": "Yes, a coffee please."}]
    train_targets = {p["target"] for p in train}
    assert not any(p["target"] in train_targets for split in ("validation", "test") for p in splits[split].to_list())
    assert splits["test"]["target"] == ["It's five.", "Thanks!"]


def test_a_file_without_usable_dialogues_is_an_error(tmp_path) -> None:
    root = write_corpus(tmp_path / "dd", {**DIALOGUES, "test": ["no turns", "just one . __eou__"]})
    with pytest.raises(CorpusError, match=r"dd\.yaml: test: no usable pairs \(.*'malformed_lines': 2"):
        pairs_of(DD, root, chatbot(), tmp_path)


def test_prepare_real_dailydialog(mirror, tmp_path) -> None:
    raw = tmp_path / "dailydialog"
    corpus = load_corpus("dailydialog", ROOT / "conf")
    fetch.fetch_corpus(corpus, raw, mirror=mirror)
    splits, stats = pairs_of(corpus, raw, chatbot(max_eval_pairs=100), tmp_path)
    assert splits["train"].num_rows > 40000 and splits["test"].num_rows == 100
    assert stats["train"]["malformed_lines"] == 0 and stats["validation"]["dropped_dialogue_in_train"] > 0
    assert not any("’" in t or " ," in t for t in splits["train"]["target"][:2000])


def test_fetch_from_the_official_archive(tmp_path, monkeypatch) -> None:
    """Online path: one verified archive whose nested per-split zips hold the dialogue files."""
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as outer:
        for split in ("train", "validation", "test"):
            inner = io.BytesIO()
            with zipfile.ZipFile(inner, "w") as zf:
                zf.writestr(f"{split}/dialogues_{split}.txt", f"{split} a . __eou__ b . __eou__\n")
            outer.writestr(f"ijcnlp_dailydialog/{split}.zip", inner.getvalue())
    payload = archive.getvalue()
    corpus = load_corpus("dailydialog", ROOT / "conf")
    archive_cfg = corpus.archive.model_copy(update={"sha256": hashlib.sha256(payload).hexdigest()})
    monkeypatch.setattr(fetch, "_download", lambda url, dest, timeout: dest.write_bytes(payload))
    monkeypatch.delenv(fetch.MIRROR_ENV, raising=False)
    files = fetch.fetch_corpus(corpus.model_copy(update={"archive": archive_cfg}), tmp_path / "dd")
    assert sorted(f.name for f in files) == ["test.txt", "train.txt", "validation.txt"]
    assert (tmp_path / "dd" / "validation.txt").read_text() == "validation a . __eou__ b . __eou__\n"

    tampered = corpus.model_copy(update={"archive": archive_cfg.model_copy(update={"sha256": "0" * 64})})
    with pytest.raises(fetch.FetchError, match="ijcnlp_dailydialog.zip: SHA-256 .* does not match"):
        fetch.fetch_corpus(tampered, tmp_path / "dd2")


def test_distinct_n_known_values() -> None:
    texts = ["I am fine.", "I am here."]  # 13a tokens: i am fine . | i am here .
    assert distinct_n(texts, 1) == pytest.approx(5 / 8)  # {i, am, fine, ., here}
    assert distinct_n(texts, 2) == pytest.approx(5 / 6)  # "i am" twice, 4 others once
    assert distinct_n(["yes"], 2) == 0.0


def test_sentence_bleu_known_values() -> None:
    """NLTK method 7 by hand: p_n' = (p_{n-1}' + p_n + p_{n+1}) / 3 with p_0' = p_1 + 1."""
    brevity = math.exp(1 - 6 / 3)  # 3 hypothesis tokens, 6 reference tokens
    p1 = (2 + 1 + 1) / 3  # every unigram, bigram and trigram of the hypothesis matches
    p2 = (p1 + 1 + 1) / 3
    assert sentence_bleu_n(["the cat sat"], ["the cat sat on the mat"], 1) == pytest.approx(brevity * p1)
    assert sentence_bleu_n(["the cat sat"], ["the cat sat on the mat"], 2) == pytest.approx(
        brevity * math.sqrt(p1 * p2)
    )
    # averaged over responses; lowercased and split by 13a before matching
    assert sentence_bleu_n(["Fine, thanks.", "the cat sat"], ["fine , thanks .", "the cat sat on the mat"], 1) == (
        pytest.approx((sentence_bleu_n(["fine , thanks ."], ["FINE, THANKS."], 1) + brevity * p1) / 2)
    )
    assert sentence_bleu_n(["no overlap here"], ["something else entirely"], 1) < 0.05


def test_dialogue_scores_measure_dull_responses() -> None:
    refs = ["Sure, here you are.", "It is five o'clock.", "Yes, I like it.", "No, thanks."]
    dull = dialogue_scores(["I don't know."] * 4, refs)
    varied = dialogue_scores(["Here you are.", "It's five.", "I like it a lot.", "No thanks."], refs)
    assert dull["top10_share"] == 1.0 and varied["top10_share"] == 1.0  # only 4 responses
    assert dull["distinct_2"] < varied["distinct_2"] and dull["bleu_1"] < varied["bleu_1"]
    assert dull["mean_length"] == 4.0  # 13a: i don't know .


def test_served_context_is_the_trained_window_however_many_turns_arrive() -> None:
    """Train/serve skew: a request with 10 turns gives the model the last `context_turns`, as in training."""
    from seqforge.tasks.registry import task_kind

    turns = [f"turn number {i} ." for i in range(10)]
    meta = {
        "corpus_format": "tsv",
        "task": {"data": {"normalization": "nfc", "context_turns": 3, "max_context_tokens": 100}},
    }
    (served,) = task_kind("chatbot").sources([turns], meta)
    pairs, _ = dialogue_pairs([*turns, "reply ."], ChatData(context_turns=3, max_context_tokens=100))
    assert served == pairs[-1]["source"] == build_context(turns[-3:], 100)
    assert "turn number 6" not in served and "turn number 7" in served
