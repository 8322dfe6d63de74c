#!/usr/bin/env bash
# Sets up .venv, trains a digit classifier in Python, exports it to build/digits.amber,
# and proves the file with its own embedded test vectors.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh
pip install -q -e .
python examples/train_digits.py --out build/digits.amber
amber inspect build/digits.amber
amber verify build/digits.amber
