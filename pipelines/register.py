"""Stage — log the model as an MLflow pyfunc and register it."""

from pipelines import run_stage
from seqforge.stages.register import register_experiment

if __name__ == "__main__":
    run_stage("register", register_experiment)
