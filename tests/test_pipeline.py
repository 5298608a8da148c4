"""End to end: `dvc repro` on the smoke profile in a fresh copy of the repository (the session's
`smoke_repo`; tests that change a repository change a `smoke_copy` of it).

Real parts only: DVC, a Ray cluster running Ray Train with 2 workers, an MLflow SQLite store. Both
tasks' registered models must load in a fresh process and translate / reply, differently for
different inputs.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from helpers import free_port, invocation, run, start_server, stop_server

pytestmark = pytest.mark.slow


def test_smoke_pipeline_registers_two_translating_versions(smoke_repo) -> None:
    repo, env = smoke_repo
    check = """
import json, mlflow
mlflow.set_tracking_uri('sqlite:///mlflow.db')
client = mlflow.MlflowClient()
versions = client.search_model_versions("name='translation-en-de'")
champion = client.get_model_version_by_alias('translation-en-de', 'challenger')
run = client.get_run(champion.run_id)
model = mlflow.pyfunc.load_model('models:/translation-en-de@challenger')
out = model.predict(__import__('pandas').DataFrame({'source': ['A man is riding a bike.', 'Two dogs.',
                                                              'A woman in a red dress sings on a stage.']}))
print(json.dumps({'versions': len(versions), 'tags': champion.tags, 'params': run.data.params,
                  'metrics': run.data.metrics, 'out': out['translation'].tolist()}))
"""
    result = json.loads(run([sys.executable, "-c", check], repo, env).stdout.strip().splitlines()[-1])
    assert result["versions"] == 2  # gru_bahdanau, then transformer (@challenger: the last registered)
    assert result["params"]["train.num_workers"] == "2"  # Ray Train ran 2 workers
    assert {"test_bleu", "val_bleu", "tokens_per_s", "test_chrf"} <= set(result["metrics"])
    assert result["tags"]["data_version"].startswith("multi30k-") and result["tags"]["arch"] == "transformer"
    assert len(result["out"]) == 3 and all(isinstance(s, str) and s.strip() for s in result["out"])
    assert len(set(result["out"])) > 1, result["out"]  # the output depends on the input

    cli = run(
        ["seqforge", "translate", "--model", "translation-en-de@challenger", "A man is riding a bike."], repo, env
    )
    assert cli.stdout.splitlines() == result["out"][:1]  # the CLI and the pyfunc model agree
    piped = run(
        ["seqforge", "translate", "-m", "translation-en-de@challenger"], repo, env, input="A dog.\nA cat.\nA girl.\n"
    )
    assert len(piped.stdout.splitlines()) == 3 and all(line.strip() for line in piped.stdout.splitlines())
    too_long = run(
        ["seqforge", "translate", "-m", "translation-en-de@challenger", "A dog.", "가나다 " * 200],
        repo,
        env,
        check=False,
    )
    assert too_long.returncode == 2 and "Traceback" not in too_long.stderr
    assert re.search(r"error: row 1: \d+ tokens after tokenisation, more than the limit of 256", too_long.stderr)

    metrics = json.loads((repo / "metrics" / "transformer.json").read_text())
    assert metrics["signature"]["bleu"].startswith("nrefs:1|case:mixed")
    assert (repo / "metrics" / "curves" / "gru_bahdanau.csv").read_text().startswith("evaluation,update,")


def test_the_stages_print_no_warning_a_user_cannot_act_on(smoke_repo) -> None:
    """MLflow's guess at a corpus's dataset source warned on every train stage (three times, with its source
    line); the source is now named, not guessed."""
    repo, _ = smoke_repo
    printed = (repo / "runs" / "repro.log").read_text()
    assert "Running stage 'train@gru_bahdanau'" in printed
    assert "can be interpreted in multiple ways" not in printed


def test_a_time_budget_is_planned_printed_and_trained_through_dvc(smoke_repo) -> None:
    """The smoke profile gives the Transformer a time budget (75 s, 3 evaluations): the train stage prints its
    plan, evaluates every N updates, re-plans them as the run's intervals take more or less time than
    planned, ends the linear schedule at the last update, and the next plan takes this machine's measured
    rate; the GRU keeps its explicit epochs."""
    from seqforge.training.budget.plan import Plan, still_improving

    repo, env = smoke_repo
    printed = (repo / "runs" / "repro.log").read_text()
    plan = json.loads((repo / "models" / "transformer" / "model.json").read_text())["plan"]
    assert (plan["unit"], plan["setting"], plan["evaluations"]) == ("budget", "75s", 3)
    assert plan["updates"] == 3 * plan["eval_every"] and Plan(**plan).estimated_s <= 75
    assert f"transformer: plan from budget 75s: {plan['updates']:,} updates" in printed
    assert re.search(r"transformer: estimated 0:0[01]:\d\d at [\d.]+ s/update", printed)
    curve = (repo / "metrics" / "curves" / "transformer.csv").read_text().splitlines()
    every, n = plan["eval_every"], len(curve) - 1
    assert [int(row.split(",")[1]) for row in curve[1:]] == [every * k for k in range(1, n + 1)]
    for k in range(1, n + 1):
        assert re.search(rf"transformer evaluation {k}/\d+, update {k * every:,}/[\d,]+ ", printed)
    assert f"transformer evaluation {n}/{n}, update {n * every:,}/{n * every:,} " in printed  # ended as re-planned
    assert (n != 3) <= ("transformer: re-planned at update" in printed)  # a plan that changed says so
    lr = [float(row.split(",")[7]) for row in curve[1:]]
    assert lr[-1] < 1e-6 < lr[0]  # linear decay: zero at the last update
    assert json.loads((repo / "models" / "gru_bahdanau" / "model.json").read_text())["plan"]["unit"] == "max_epochs"

    # the honest end: warned, tagged and listed exactly when the curve was still rising at the end

    bleu = [(int(row.split(",")[1]), float(row.split(",")[5])) for row in curve[1:]]
    rising = still_improving(bleu, "max", 0.05)
    warned = re.search(
        r"warning: transformer: still improving when it ended: (.+); raise train.budget \(75s\)", printed
    )
    assert bool(warned) == bool(rising) and (not rising or warned.group(1) == f"val_bleu {rising}")
    listed = run(["seqforge", "models", "translation-en-de"], repo, env).stdout
    assert ("translation-en-de v2 undertrained: transformer: still improving" in listed) == bool(rising)

    shown = run(["seqforge", "plan", "translation"], repo, env).stdout
    cells = [re.split(r"[│┃|]", line) for line in shown.splitlines()]  # rich draws ASCII without a UTF-8 locale
    rows = {c[1].strip(): "|".join(c) for c in cells if len(c) > 6}
    assert set(rows) >= {"gru_bahdanau", "transformer"}
    assert "budget 75s" in rows["transformer"] and "max_epochs 2" in rows["gru_bahdanau"]
    assert all("the last run on this" in row for row in (rows["transformer"], rows["gru_bahdanau"]))


def test_an_alias_moved_outside_seqforge_is_used_by_the_next_translate(smoke_copy) -> None:
    """As if set by hand in the MLflow UI: the CLI resolves @champion when it loads, no restart flags."""
    repo, env = smoke_copy
    sentences = ["A man is riding a bike.", "Two dogs play in the snow."]

    def set_champion(version: str) -> None:
        action = f"set_registered_model_alias('translation-en-de', 'champion', '{version}')"
        run([sys.executable, "-c", f"import mlflow; mlflow.MlflowClient('sqlite:///mlflow.db').{action}"], repo, env)

    outputs = {}
    for version in ("1", "2"):
        set_champion(version)
        by_alias = run(["seqforge", "translate", "-m", "translation-en-de@champion", *sentences], repo, env)
        assert f"translation-en-de@champion is version {version}" in by_alias.stderr
        assert len(by_alias.stdout.splitlines()) == 2
        outputs[version] = by_alias.stdout
    assert outputs["1"] != outputs["2"]  # two different models (a GRU, a Transformer) answered
    pinned = run(["seqforge", "translate", "-m", "translation-en-de/2", *sentences], repo, env)
    assert pinned.stdout == outputs["2"]


CHAT_CHECK = """
import json, sys, mlflow, pandas as pd
mlflow.set_tracking_uri('sqlite:///mlflow.db')
client = mlflow.MlflowClient()
model = mlflow.pyfunc.load_model('models:/chatbot-dailydialog@challenger')
reply = lambda turns: model.predict(pd.DataFrame({'conversation': [turns]}))['reply'][0]
a, b = 'Hi, how are you?', 'What do you do for a living?'
first = reply([a])
version = client.get_model_version_by_alias('chatbot-dailydialog', 'challenger')
print(json.dumps({'versions': len(client.search_model_versions("name='chatbot-dailydialog'")),
                  'tags': version.tags, 'metrics': client.get_run(version.run_id).data.metrics,
                  'with_history': [first, reply([a, first, b])], 'after_reset': reply([b])}))
"""


def test_smoke_pipeline_registers_chatbots_that_answer(smoke_repo) -> None:
    repo, env = smoke_repo
    result = json.loads(run([sys.executable, "-c", CHAT_CHECK], repo, env).stdout.strip().splitlines()[-1])
    assert result["versions"] == 1 and result["tags"]["task"] == "chatbot"
    assert result["tags"]["data_version"].startswith("dailydialog-")
    assert {"test_bleu_1", "test_bleu_2", "test_distinct_2", "test_ppl", "val_loss"} <= set(result["metrics"])
    assert "val_bleu" not in result["metrics"]  # chat models are selected on validation loss
    assert all(isinstance(r, str) and r.strip() for r in result["with_history"])  # min_length: never empty

    # the CLI carries the conversation: its second reply is the model's answer to both turns
    chat = run(
        ["seqforge", "chat", "--model", "chatbot-dailydialog@challenger"],
        repo,
        env,
        input="Hi, how are you?\nWhat do you do for a living?\n",
    )
    assert chat.stdout.splitlines() == result["with_history"]
    reset = run(
        ["seqforge", "chat", "-m", "chatbot-dailydialog@challenger"],
        repo,
        env,
        input="Hi, how are you?\n/reset\nWhat do you do for a living?\n/quit\nignored\n",
    )
    assert reset.stdout.splitlines() == [result["with_history"][0], result["after_reset"]]
    wider = run(
        ["seqforge", "chat", "-m", "chatbot-dailydialog@challenger", "--window", "4"],
        repo,
        env,
        check=False,
        input="Hi.\n",
    )
    assert wider.returncode == 2 and "the model was trained on the last 3 turns" in wider.stderr

    metrics = json.loads((repo / "metrics" / "chatbot_gru_bahdanau.json").read_text())
    assert metrics["task"] == "chatbot" and 0 <= metrics["metrics"]["distinct_2"] <= 1
    data = json.loads((repo / "metrics" / "data_chatbot.json").read_text())
    assert data["train"]["kept"] == 1500 and data["test"]["dropped_dialogue_in_train"] > 0


def stale(repo: Path, env: dict) -> set[str]:
    """The stages `dvc repro` would run, from `dvc status` (which runs none) after `resolve` has merged
    conf/ into the stages' resolved files."""
    run(["dvc", "repro", "resolve"], repo, env)
    return set(json.loads(run(["dvc", "status", "--json", "dvc.yaml"], repo, env).stdout))


def test_second_repro_does_nothing_and_params_rerun_only_dependents(smoke_copy) -> None:
    repo, env = smoke_copy
    again = run(["dvc", "repro"], repo, env)
    assert "Running stage" not in again.stdout
    chat = repo / "conf" / "tasks" / "chatbot.yaml"
    original = chat.read_text()
    chat.write_text(original.replace("top_p: 0.9", "top_p: 0.8"))  # a chatbot decoding knob
    assert stale(repo, env) == {"evaluate@chatbot_gru_bahdanau", "register@chatbot_gru_bahdanau"}
    chat.write_text(original)
    profile = repo / "conf" / "profiles" / "smoke.yaml"
    original = profile.read_text()
    # a decoding change in the profile: evaluate and register of every model, nothing else
    profile.write_text(original.replace("decode: {beam_size: 2}", "decode: {beam_size: 3}"))
    models = {"gru_bahdanau", "transformer", "chatbot_gru_bahdanau"}
    assert stale(repo, env) == {f"{stage}@{model}" for stage in ("evaluate", "register") for model in models}
    # a model change of one family: the trainings of that family only (what follows them reruns on their outputs)
    profile.write_text(original.replace("ffn_dim: 64}", "ffn_dim: 96}"))
    assert stale(repo, env) == {"train@transformer"}
    profile.write_text(original)
    assert stale(repo, env) == set()  # back as it was: nothing to run


def test_misaligned_corpus_fails_with_a_clear_error_and_keeps_results(smoke_copy) -> None:
    import gzip

    repo, env = smoke_copy
    bad = repo / "data" / "multi30k" / "val.de.gz"
    lines = gzip.decompress(bad.read_bytes()).decode().splitlines()[:-3]
    bad.unlink()  # a DVC-cached file may be a link into the cache: replace it, never write through it
    bad.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    prepared = repo / "artifacts" / "prepared" / "translation"
    before = sorted(p.relative_to(prepared) for p in prepared.rglob("*"))
    proc = run([sys.executable, "-m", "pipelines.prepare", "translation"], repo, env, check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "val.en.gz has 1014 lines" in proc.stderr and "val.de.gz has 1011" in proc.stderr
    assert sorted(p.relative_to(prepared) for p in prepared.rglob("*")) == before  # earlier result kept


def post(port: int, payload: object) -> tuple[int, dict]:
    return invocation(port, payload, timeout=60)[:2]


def serving(cmd: list[str], repo: Path, env: dict, port: int) -> subprocess.Popen:
    """A scoring server on the smoke store, answering /ping; the caller terminates it."""
    return start_server(
        cmd, repo, {**env, "MLFLOW_TRACKING_URI": "sqlite:///mlflow.db"}, f"http://127.0.0.1:{port}/ping"
    )


def test_served_models_answer_and_reject_bad_requests_with_400(smoke_copy) -> None:
    repo, env = smoke_copy
    run(["seqforge", "promote", "translation-en-de"], repo, env)  # @challenger -> @champion (none yet)
    port = free_port()
    plain = [
        "mlflow",
        "models",
        "serve",
        "-m",
        "models:/translation-en-de@champion",
        "--env-manager",
        "local",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    proc = serving(plain, repo, env, port)
    try:
        status, body = post(
            port,
            {
                "dataframe_records": [
                    {"source": "A man is riding a bike."},
                    {"source": "A woman in a red dress sings on a stage."},
                ]
            },
        )
        translations = [p["translation"] for p in body["predictions"]]
        assert status == 200 and all(t.strip() for t in translations) and len(set(translations)) == 2
        status, body = post(port, {"dataframe_records": [{"source": "x" * 1001}]})
        assert status == 400 and "1001 characters, more than the limit of 1000" in body["message"]
        status, body = post(port, {"dataframe_records": [{"source": "A dog."}] * 65})
        assert status == 400 and "65 rows in one request, more than the limit of 64" in body["message"]
        status, body = post(port, {"dataframe_records": [{"source": 42}]})
        assert status == 400 and body["message"]
        status, body = post(port, {"dataframe_records": [{"text": "A dog."}]})
        assert status == 400
        status, body = post(port, {"dataframe_records": [{"source": "A dog."}, {"source": "가나다라 " * 100}]})
        assert status == 400 and re.search(
            r"row 1: \d+ tokens after tokenisation, more than the limit of 256 "
            r"\(serve.max_tokens\)",
            body["message"],
        )
        status, body = post(port, {"dataframe_records": [{"source": "A dog </s> <sep> runs."}]})
        assert status == 200  # special-token strings are plain text
        status, _ = post(port, {"dataframe_records": [{"source": "Two dogs."}]})  # still serving
        assert status == 200
    finally:
        stop_server(proc)

    port = free_port()
    proc = serving(
        ["seqforge", "serve", "--model", "chatbot-dailydialog@challenger", "--port", str(port)], repo, env, port
    )
    try:
        status, body = post(port, {"dataframe_records": [{"conversation": ["Hi, how are you?"]}]})
        assert status == 200 and body["predictions"][0]["reply"].strip()
        status, body = post(port, {"dataframe_records": [{"conversation": ["Hi."] * 21}]})
        assert status == 400 and "expected a list of 1 to 20 turns" in body["message"]
        turns = [f"I have {n} cats." for n in range(10)]  # the model was trained on 3 turns of context
        replies = [
            post(port, {"dataframe_records": [{"conversation": c}]})[1]["predictions"][0]["reply"]
            for c in (turns, turns[-3:])
        ]
        assert replies[0] == replies[1]
    finally:
        stop_server(proc)


def test_served_model_under_concurrent_load_answers_every_request_as_it_should(smoke_repo, tmp_path) -> None:
    """bench/serve_load.py, briefly (8 s, Ray Serve): 4 clients, a third of the requests invalid; no 5xx, no timeout."""
    repo, env = smoke_repo
    out = tmp_path / "load.json"
    run(
        [
            sys.executable,
            "-m",
            "bench.serve_load",
            "--model",
            "translation-en-de@challenger",
            "--engines",
            "ray",
            "--clients",
            "4",
            "--seconds",
            "8",
            "--warmup",
            "3",
            "--invalid",
            "0.33",
            "--json",
            str(out),
        ],
        repo,
        env,
    )
    [figures] = json.loads(out.read_text())["runs"]
    assert figures["unexpected"] == 0 and figures["valid"] > 4 and figures["invalid"] > 0
    assert figures["invalid_answered_400"] == figures["invalid"]
    assert figures["rss_end_mib"] < 1.5 * figures["rss_start_mib"]  # no runaway memory in 8 s
    assert figures["p50_valid_ms"] <= figures["p99_valid_ms"] < 15_000  # answered, none near the client timeout


def test_your_own_tsv_corpus_and_task_train_register_and_translate(smoke_copy) -> None:
    """A user's Korean-English TSV: `corpus add` + `task add` + `dvc repro` (smoke) -> a registered
    model named after the task that `seqforge translate` runs; nothing of the built-in tasks reruns."""
    repo, env = smoke_copy
    sample = Path(__file__).parent / "data" / "ko_en.tsv"
    added = run(
        [
            "seqforge",
            "corpus",
            "add",
            "ko-en-sample",
            "--format",
            "tsv",
            "--source",
            str(sample),
            "--columns",
            "ko=0,en=1",
            "--split",
            "validation=5,test=5",
        ],
        repo,
        env,
    ).stdout
    assert "ko-en-sample: 50 pairs" in added and "pinned in data.dvc" in added
    added = run(
        [
            "seqforge",
            "task",
            "add",
            "ko-en",
            "--kind",
            "translation",
            "--corpus",
            "ko-en-sample",
            "--src",
            "ko",
            "--tgt",
            "en",
            "--experiments",
            "gru_bahdanau",
            "--plan",
        ],
        repo,
        env,
    ).stdout
    assert set(re.findall(r"Running stage '([^']+)'", added)) == {"resolve", "prepare@ko-en", "tokenize@ko-en"}
    assert "tokenize ko-en: sentencepiece" in added  # the CJK default tokenizer
    assert "prepared and tokenized ko-en (dvc repro tokenize@ko-en" in added
    cells = [re.split(r"[│┃|]", line) for line in added.splitlines()]
    plan = {c[1].strip(): [v.strip() for v in c] for c in cells if len(c) > 6}["ko-en_gru_bahdanau"]
    assert plan[2] == "max_epochs 2" and 30 <= int(plan[3]) <= 40  # the smoke profile's epochs; training pairs
    out = run(["dvc", "repro"], repo, env).stdout
    ran = set(re.findall(r"Running stage '([^']+)'", out))
    assert ran - {"resolve"} == {f"{stage}@ko-en_gru_bahdanau" for stage in ("train", "evaluate", "register")}
    out = run(["seqforge", "translate", "-m", "ko-en@challenger", "그는 커피를 마십니다."], repo, env)
    assert "ko-en@challenger is version 1" in out.stderr and out.stdout.strip()
    metrics = json.loads((repo / "metrics" / "ko-en_gru_bahdanau.json").read_text())
    assert metrics["kind"] == "translation" and "tok:13a" in metrics["signature"]["bleu"]

    # the built-in tasks go; the clone's only task is the user's, and it still reproduces and translates
    removed = run(["seqforge", "task", "remove", "translation", "chatbot", "long_range"], repo, env).stdout
    assert all(f"removed task {t}" in removed for t in ("translation", "chatbot", "long_range"))
    refused = run(["seqforge", "corpus", "remove", "ko-en-sample"], repo, env, check=False)
    assert refused.returncode == 1 and "used by task ko-en" in refused.stderr and "Traceback" not in refused.stderr
    run(["seqforge", "corpus", "remove", "multi30k", "dailydialog", "long_range"], repo, env)
    assert [o["path"] for o in yaml.safe_load((repo / "data.dvc").read_text())["outs"]] == ["data/ko-en-sample"]
    assert set(yaml.safe_load((repo / "conf" / "pipeline.yaml").read_text())["experiments"]) == {"ko-en_gru_bahdanau"}
    listed = run(["seqforge", "task", "list"], repo, env).stdout
    assert "ko-en" in listed and "multi30k" not in listed
    out = run(["dvc", "repro"], repo, env).stdout
    assert set(re.findall(r"Running stage '([^']+)'", out)) <= {"resolve"}  # stale stage configs dropped, nothing else
    assert run(["seqforge", "translate", "-m", "ko-en@challenger", "그는 커피를 마십니다."], repo, env).stdout.strip()
