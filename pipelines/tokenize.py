"""Stage — train the task's subword tokenizer on train, encode every split to token ids."""

from pipelines import run_stage
from seqforge.stages.tokenize import tokenize_task

if __name__ == "__main__":
    run_stage("tokenize", tokenize_task, what="task")
