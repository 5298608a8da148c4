"""A seeded fault campaign: the smoke model trained again and again, each run with one fault drawn at random (its
kind and its moment), and after each run the invariants checked against a fault-free run with the same seed.

    make smoke                                  # the smoke tasks' data, tokenized (once)
    python -m bench.chaos --runs 10 --seed 1    # works on a copy of the checkout; the checkout is not changed

Each run is `dvc repro train@gru_bahdanau`, as a user runs it, logging to an `mlflow server` of the campaign's own
on loopback. The faults: a Ray Train worker (rank 0 or 1) SIGKILLed before a random update, at the end of the first
validation after one, or inside the first checkpoint write after one (`seqforge.training.worker.faults`); the
driver (`dvc repro` and the stage under it) SIGKILLed at a random moment, then `dvc repro` run again; the tracking
server down at a random moment for 5 to 60 s; or, once the model is trained and evaluated, the connection that
carries a random byte of what `dvc repro register@gru_bahdanau` sends to the server cut there (`bench.relay`), and
the stage run again if it failed; or the object store down: the run keeps its checkpoints in an S3 bucket (SeaweedFS,
as the team stack runs it, started when first drawn: `bench.object_store`), which goes off the network once Ray has
registered a random one of the checkpoints the fault-free run made, until the stage ends; then the stage is run
again. `--kinds` draws from some kinds only. The invariants, after each run:

- finished: the stage ended in one MLflow run, FINISHED (a killed driver's stage, or one that failed with one line
  saying why: its rerun finished);
- metrics once: every metric of every step of the fault-free run logged exactly once, in order (across the killed
  driver's run and its rerun's);
- checkpoints complete: every checkpoint Ray registered is whole (`storage.torn`);
- dvc clean: `dvc status train@gru_bahdanau` finds the stage up to date (DVC recorded what the stage left; a killed
  `dvc repro`'s lock did not stay);
- registered once (an upload cut): a failed register stage said why in one line; the run has one registered
  version, READY, and it loads (`seqforge.tracking.model_code` checks its files' digests); DVC finds the register
  stage up to date;
- weights: the exported weights equal the fault-free run's, bit for bit (a resumed run redoes its updates exactly:
  the data loader's place is in the checkpoint, dropout's masks are a function of the batch, `StepSeed`); where
  they do not, the largest difference is printed.

One line per run, then `faults injected N, survived S, lost L` (L: runs where an invariant broke); `--json PATH`
writes the same to a report (reports/chaos/ for the docs). Runs on the Ray cluster at `RAY_ADDRESS`, else a local
Ray instance per run.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import logging
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import mlflow
import torch
import yaml

from bench.chaos_checks import DVC, STAGE, VARYING, Outcome, broken, difference, dvc_changed, steps
from bench.object_store import SNAPSHOT, ObjectStore
from bench.relay import CuttingRelay
from bench.servers import TrackingServer
from seqforge.stack.processes import StackError
from seqforge.tracking.pyfunc import PACKAGE_DIR
from seqforge.training.worker.fault_variable import VARIABLE

LEFT_OUT = {".git", ".venv", "runs", "mlruns", "mlflow.db", "mlartifacts", "models", "reports"}  # a fresh store
EVALUATE, REGISTER = "evaluate@gru_bahdanau", "register@gru_bahdanau"
TRAIN = [DVC, "repro", STAGE]  # as a user runs it: DVC resolves the changed profile first, and records the outputs
KINDS = (
    "worker before an update",
    "worker after a validation",
    "worker inside a checkpoint write",
    "driver",
    "tracking server down",
    "model upload cut",
    "object store down",
)
POINTS = {KINDS[0]: "update", KINDS[1]: "validation", KINDS[2]: "checkpoint"}
UNSET = {VARIABLE, "SEQFORGE_RAY_STORAGE"}  # a fault planted, a team stack's bucket: the campaign's runs have neither


def scratch_copy(repo: Path) -> Path:
    """A copy of the checkout with a fresh MLflow store and nothing trained, on the smoke profile."""
    if not any((repo / "artifacts" / "tokenized").glob("*")):
        sys.exit(f"chaos: {repo} has no tokenized data: run `make smoke` there first")
    copy = Path(tempfile.mkdtemp(prefix="seqforge-chaos-")) / "seqforge"
    shutil.copytree(repo, copy, symlinks=True, ignore=lambda d, names: LEFT_OUT & set(names) if d == str(repo) else [])
    profile = [sys.executable, "-m", "seqforge.cli", "profile", "smoke"]
    subprocess.run(profile, cwd=copy, check=True, capture_output=True)
    subprocess.run([DVC, "config", "--local", "core.no_scm", "true"], cwd=copy, check=True, capture_output=True)
    return copy


def set_storage(repo: Path, storage: str) -> None:
    """The smoke RNNs checkpoint every 10 updates into `storage` (a Ray run of its own), and do not stop early."""
    path = repo / "conf" / "profiles" / "smoke.yaml"
    profile = yaml.safe_load(path.read_text())
    profile["families"]["rnn"]["train"] |= {
        "checkpoint_every_n_steps": 10,
        "early_stopping_patience": 50,
        "storage_path": storage,
    }
    path.write_text(yaml.safe_dump(profile))


def experiment_runs(client: mlflow.MlflowClient) -> list[str]:
    """The store's runs, oldest first."""
    experiments = [e.experiment_id for e in client.search_experiments()]
    return [r.info.run_id for r in client.search_runs(experiments, order_by=["attributes.start_time ASC"])]


def train(repo: Path, env: dict, client: mlflow.MlflowClient, kill_after: float | None = None, outage=None) -> Outcome:
    """Run the train stage (SIGKILL its driver after `kill_after` s, then run it again; or, with `outage(ended)`,
    run that beside it: a fault that ends once the stage has ended) and read what it did."""
    before, start_at = set(experiment_runs(client)), time.monotonic()
    log, killed, ended = repo / "train.log", False, threading.Event()  # a file: a pipe nobody reads could stall it
    with ThreadPoolExecutor(1) as pool, log.open("w") as out:
        fault = pool.submit(outage, ended) if outage else None
        proc = subprocess.Popen(TRAIN, cwd=repo, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            proc.wait(timeout=kill_after)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            killed = True
            wait_for_workers_to_go()
            proc = subprocess.run(TRAIN, cwd=repo, env=env, stdout=out, stderr=subprocess.STDOUT)
        except BaseException:  # Ctrl-C: the stage goes with the campaign
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            raise
        finally:
            ended.set()
        faulted = killed or bool(fault and fault.result())  # the server is up again before anyone reads from it
        failed = None
        if proc.returncode:  # a fault may fail the stage, if it says why in one line: then it must finish when rerun
            said = log.read_text()
            errors = re.findall(r"^(?:[\w.]+(?:Error|Exception)|ERROR): .*$", said, re.MULTILINE) or ["?"]
            failed = f"{'with a traceback' if 'Traceback' in said else 'in one line'} ({errors[-1][:300]})"
            proc = subprocess.run(TRAIN, cwd=repo, env=env, stdout=out, stderr=subprocess.STDOUT)
    if proc.returncode:
        sys.exit(f"chaos: the train stage failed ({proc.returncode}):\n{log.read_text()[-3000:]}")
    runs = [r for r in experiment_runs(client) if r not in before]
    weights = torch.load(repo / "models" / "gru_bahdanau" / "model.pt", map_location="cpu")
    return Outcome(runs, weights, time.monotonic() - start_at, killed, faulted, failed)


def wait_for_workers_to_go(timeout: float = 60) -> None:
    """A killed driver's Ray Train workers end with its job (a cluster's) or its local instance."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = []
        for proc in Path("/proc").iterdir():
            with contextlib.suppress(OSError):
                if proc.name.isdigit() and (proc / "cmdline").read_bytes().startswith(b"ray::RayTrainWorker"):
                    alive.append(proc.name)
        if not alive:
            return
        time.sleep(0.5)
    sys.exit(f"chaos: the killed driver's Ray Train workers were still alive after {timeout:.0f} s")


def register_bytes(repo: Path) -> int:
    """About what the register stage sends: the model's files and the project's code the version carries (the
    requests around them add a little)."""
    code = (f for f in PACKAGE_DIR.rglob("*") if "__pycache__" not in f.parts)
    return sum(f.stat().st_size for f in [*(repo / "models" / "gru_bahdanau").rglob("*"), *code] if f.is_file())


def register_cut(repo: Path, env: dict, relay: CuttingRelay, at: int, run_id: str) -> tuple[str, list[str]]:
    """Evaluate the run's model, then `dvc repro register@gru_bahdanau` with its requests to the tracking server cut
    at byte `at` (through `relay`), and again without the cut if that failed: what was cut, and the invariants that do
    not hold: a failure in one line, one registered version of the run, whole (it loads: its files' digests
    match), the stage up to date for DVC."""
    subprocess.run([DVC, "repro", EVALUATE], cwd=repo, env=env, check=True, capture_output=True)
    relay.arm(at)
    first = subprocess.run([DVC, "repro", REGISTER], cwd=repo, env=env | {"MLFLOW_TRACKING_URI": relay.url},
                           capture_output=True, text=True)  # fmt: skip
    cut, said = relay.was_cut(), []
    relay.arm(None)
    if first.returncode:
        if "Traceback" in first.stdout + first.stderr:
            said.append("register: a traceback, not one line")
        again = subprocess.run([DVC, "repro", REGISTER], cwd=repo, env=env, capture_output=True, text=True)
        if again.returncode:
            said.append(f"register: the rerun failed too: {(again.stdout + again.stderr).strip().splitlines()[-1:]}")
    client = mlflow.MlflowClient(env["MLFLOW_TRACKING_URI"])
    versions = client.search_model_versions(f"run_id = '{run_id}'")
    if [v.status for v in versions] != ["READY"]:
        said.append(f"registered once: the run has {len(versions)} versions ({[v.status for v in versions]})")
    for v in versions:
        try:
            mlflow.pyfunc.load_model(f"models:/{v.name}/{v.version}")
        except Exception as err:  # noqa: BLE001 -- whatever refuses it, the version is not whole
            said.append(f"whole: {v.name}/{v.version} does not load ({str(err).splitlines()[0][:150]})")
    said += dvc_changed(repo, REGISTER)
    if not cut:
        return "", said
    method, path, *_ = cut.split() + ["?"]
    then = "the stage failed" if first.returncode else "the stage registered"
    return f"cut in `{method} …/{'/'.join(path.split('/')[-3:])}`, {then}", said


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10, help="faulted runs")
    parser.add_argument("--seed", type=int, default=0, help="draws the faults (the training's seed is the profile's)")
    parser.add_argument("--repo", type=Path, default=Path("."), help="the checkout to copy (default: here)")
    parser.add_argument("--json", type=Path, help="also write the campaign to this report")
    parser.add_argument("--kinds", default=",".join(KINDS), help="the kinds of fault drawn from, comma-separated")
    args = parser.parse_args()
    kinds = tuple(k.strip() for k in args.kinds.split(",") if k.strip())
    if unknown := set(kinds) - set(KINDS):
        sys.exit(f"chaos: --kinds: no such kind {', '.join(sorted(unknown))} (kinds: {', '.join(KINDS)})")
    if not kinds:
        sys.exit(f"chaos: --kinds: none given (kinds: {', '.join(KINDS)})")
    logging.getLogger("mlflow").setLevel(logging.WARNING)  # not its store's creation, once per run
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("chaos: stopped (SIGTERM)"))  # the server and copy go too
    repo = scratch_copy(args.repo.resolve())
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "AWS_")) and k not in UNSET}
    server = TrackingServer(repo, env)
    relay = CuttingRelay(int(server.url.rsplit(":", 1)[1]))
    env["MLFLOW_TRACKING_URI"] = server.url
    mlflow.set_tracking_uri(server.url)  # where a registered version is loaded from
    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
    client = mlflow.MlflowClient(server.url)
    store: ObjectStore | None = None  # started when first drawn
    try:
        server.start()
        set_storage(repo, "runs/chaos-0")
        ref = train(repo, env, client)
        if ref.failed:  # nothing to hold the faulted runs against
            sys.exit(f"chaos: the fault-free run failed {ref.failed}")
        reference = {k: v for k, v in steps(client, ref.runs).items() if k not in VARYING}
        updates = max(max(v) for v in reference.values() if v)  # metrics of the last update are logged at its step
        upload = register_bytes(repo)
        saved = json.loads(next((repo / "runs/chaos-0").glob(f"*/{SNAPSHOT}")).read_text())["current_report_index"]
        print(f"fault-free run: {updates} updates in {ref.seconds:.0f} s, {sum(map(len, reference.values()))} "
              "metric values", flush=True)  # fmt: skip
        injected = survived = 0
        report: dict = {"seed": args.seed, "updates": updates, "reference_s": round(ref.seconds, 1), "runs": []}
        if set(kinds) != set(KINDS):  # `--kinds`: the report says which
            report = {"seed": args.seed, "kinds": list(kinds)} | report
        for i in range(1, args.runs + 1):
            rng = random.Random(f"{args.seed}-{i}")
            kind, storage = rng.choice(kinds), f"runs/chaos-{i}"
            set_storage(repo, storage)
            marker, run_env, kill_after, outage = repo / f"fault-{i}", dict(env), None, None
            if kind == "driver":
                kill_after = rng.uniform(5, 0.9 * ref.seconds)
                moment = f"after {kill_after:.1f} s"
            elif kind == "tracking server down":
                at, seconds = rng.uniform(5, 0.9 * ref.seconds), rng.uniform(5, 60)
                outage = functools.partial(server.outage, at, seconds)
                moment = f"after {at:.1f} s, for {seconds:.1f} s"
            elif kind == "model upload cut":
                cut_at = 1 + int(rng.random() * upload)
                moment = f"at byte {cut_at:,} of about {upload:,} the register stage sends"
            elif kind == "object store down":
                try:
                    store = store or ObjectStore(repo.parent / "store")
                except (StackError, OSError) as err:
                    sys.exit(f"chaos: the object store did not start: {err}")
                after = rng.randint(1, max(1, saved - 1))  # a checkpoint is still to come
                run_env |= store.env(f"chaos-{i}")
                outage = functools.partial(store.outage, f"chaos-{i}", after)
                moment = f"once Ray registered checkpoint {after} of {saved}"
            else:
                rank, update = rng.randrange(2), rng.randrange(1, updates - 1)
                run_env[VARIABLE] = f"{rank}:{update}:{POINTS[kind]}:{marker}"
                moment = f"rank {rank}, update {update}"
            outcome = train(repo, run_env, client, kill_after, outage)
            if store and kind == "object store down":
                store.mirror(f"chaos-{i}/train", repo / storage)  # where the checks read checkpoints
            said = broken(client, outcome, reference, repo, storage)  # before evaluate logs the test metrics
            if kind == "model upload cut":
                what, registering = register_cut(repo, env, relay, cut_at, outcome.runs[-1])
                said += registering
                if what:
                    moment += f": {what}"
                    outcome.faulted = True
            if not (outcome.faulted or marker.exists()):
                print(f"run {i}: {kind} ({moment}): the run ended before the fault; not counted", flush=True)
                continue
            injected += 1
            moment += f", died at update {marker.read_text()}" if marker.exists() else ""
            moment += f"; the stage failed {outcome.failed}, and finished when run again" if outcome.failed else ""
            if delta := difference(outcome.weights, ref.weights):
                said.append(f"weights: differ from the fault-free run's by at most {delta:.2e}")
            survived += not said
            verdict = "invariants held, weights bit for bit equal" if not said else "BROKEN: " + "; ".join(said)
            print(f"run {i}: {kind} ({moment}): {verdict} ({outcome.seconds:.0f} s)", flush=True)
            report["runs"].append({"run": i, "kind": kind, "moment": moment, "broken": said, "weights_max_diff": delta})
        print(f"faults injected {injected}, survived {survived}, lost {injected - survived}")
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            totals = {"injected": injected, "survived": survived, "lost": injected - survived}
            args.json.write_text(json.dumps(report | totals, indent=2) + "\n")
    finally:
        if store:
            store.close()
        relay.close()
        server.stop()
        shutil.rmtree(repo.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
