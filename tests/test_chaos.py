"""The seeded fault campaign (`bench.chaos`), short: two faulted runs of the smoke model (seed 61 draws the model's
upload cut at a random byte, then the driver, `dvc repro` with its stage, killed at a random moment) checked against
a fault-free run. The long campaign (seed 11: every kind of fault) is `nightly`."""

from __future__ import annotations

import sys

import pytest

from helpers import ROOT, run

pytestmark = pytest.mark.slow


def campaign(smoke_data, runs: int, seed: int) -> list[str]:
    repo, env = smoke_data
    cmd = [sys.executable, "-m", "bench.chaos", "--runs", str(runs), "--seed", str(seed), "--repo", str(repo)]
    return run(cmd, ROOT, env).stdout.splitlines()


def test_a_short_seeded_fault_campaign_loses_nothing(smoke_data) -> None:
    lines = campaign(smoke_data, 2, 61)
    faulted = [line for line in lines if line.startswith("run ")]
    assert [line.split(":")[1].split("(")[0].strip() for line in faulted] == ["model upload cut", "driver"], lines
    assert all("invariants held" in line for line in faulted), lines
    assert lines[-1] == "faults injected 2, survived 2, lost 0", lines


@pytest.mark.nightly
def test_a_long_seeded_fault_campaign_loses_nothing(smoke_data) -> None:
    lines = campaign(smoke_data, 12, 11)
    assert lines[-1].endswith("lost 0") and not lines[-1].startswith("faults injected 0,"), lines
