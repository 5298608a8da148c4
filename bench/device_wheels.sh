#!/usr/bin/env bash
# Wheels a GPU machine without the project's install needs for `make gpu-check` (its image has torch,
# lightning, pyarrow, sacrebleu, tokenizers, sentencepiece, typer, rich, pandas, but not these; ctranslate2
# is 43 MB of the 64 MiB a call carries): the
# versions this checkout's .venv has, for CPython 3.12 on x86-64 Linux, into .whl/ (git-ignored).
#   bench/device_wheels.sh [PYTHON_VERSION]      then carry .whl/ and artifacts/tokenized/translation
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
PACKAGES=(pydantic pydantic_core annotated_types typing_inspection typing_extensions
          datasets dill multiprocess nltk sacremoses ctranslate2)
mapfile -t SPECS < <("$PY" -c 'import sys; from importlib.metadata import version
for name in sys.argv[1:]: print(f"{name}=={version(name)}")' "${PACKAGES[@]}")
rm -rf .whl && mkdir .whl
"$PY" -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
  --python-version "${1:-3.12}" --implementation cp --platform manylinux_2_28_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform any -d .whl "${SPECS[@]}"
du -sh .whl
