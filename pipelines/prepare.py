"""Stage — raw corpus -> cleaned (source, target) pairs per split + corpus statistics."""

from pipelines import run_stage
from seqforge.stages.prepare import prepare_task

if __name__ == "__main__":
    run_stage("prepare", prepare_task, what="task")
