"""Stage — train one experiment on Ray Train, export models/<name>/."""

from pipelines import run_stage
from seqforge.stages.train import train_experiment

if __name__ == "__main__":
    run_stage("train", train_experiment)
