"""Stage — beam-search the test split, write metrics/<name>.json."""

from pipelines import run_stage
from seqforge.stages.evaluate import evaluate_experiment

if __name__ == "__main__":
    run_stage("evaluate", evaluate_experiment)
