"""Stage — write each task's and experiment's effective stage configuration (artifacts/config/)."""

from pipelines import run_stage
from seqforge.stages.resolve import run

if __name__ == "__main__":
    run_stage("resolve", run, what="all")
