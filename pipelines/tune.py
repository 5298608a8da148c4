"""Sweep stage (sweeps/dvc.yaml, run on purpose) — Ray Tune over conf/tune/<experiment>.yaml."""

from pipelines import run_stage
from seqforge.research.tune import run_sweep

if __name__ == "__main__":
    run_stage("tune", run_sweep)
