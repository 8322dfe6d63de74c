#!/usr/bin/env bash
# Sets up .venv and runs the demo: train a digit classifier in Python.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh
pip install -q -e .
python examples/train_digits.py --out build/digits.amber
