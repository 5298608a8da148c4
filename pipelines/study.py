"""Study stage (studies/dvc.yaml, run on purpose) — the classic claims measured, conf/study.yaml."""

from pipelines import run_stage
from seqforge.research.study import run_study

if __name__ == "__main__":
    run_stage("study", run_study, what=None)
