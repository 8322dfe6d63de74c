#!/usr/bin/env bash
# Sets up .venv (core + test tools + pinned torch for the cross-checks) and runs
# lint, type checks and the whole test suite. Usage: bash scripts/test.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh
pip install -q -e '.[test,torch,onnx,hf,distributed,ray,dask,serve,serve-test]'
# clang + libFuzzer run the fuzz-harness smoke test and the clang build; without them
# those tests skip (the gcc sanitizer build and the fuzz regressions always run).
if ! command -v clang >/dev/null && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  (apt-get update -qq && apt-get install -y -qq clang libclang-rt-dev >/dev/null) \
    || echo "note: clang could not be installed; clang-only tests will skip"
fi
echo "== ruff"; ruff check src tests examples bench
echo "== mypy"; mypy src/amber
echo "== pytest"
# NOTE: pytest exits 5 when no test ran; set -e makes that a failure, as it should be.
python -m pytest "$@"
