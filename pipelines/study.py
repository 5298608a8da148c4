"""Study stage (studies/dvc.yaml, studies/long/dvc.yaml; run on purpose) — the classic claims measured:
`pipelines/stage study [classic|long]` (conf/study.yaml, conf/study_long.yaml)."""

from pipelines import run_stage
from seqforge.research.study import run_study

if __name__ == "__main__":
    run_stage("study", run_study, what="study", default="classic")
