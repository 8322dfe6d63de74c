#!/usr/bin/env bash
# Sets up .venv, trains a digit classifier in Python, exports it to build/digits.amber,
# proves the file with its own embedded test vectors, then classifies the held-out images
# with a C program linked against libamber: the exported model running with no Python.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh
pip install -q -e .
python examples/train_digits.py --out build/digits.amber
amber inspect build/digits.amber
amber verify build/digits.amber
# The same model from C: build examples/c/classify.c against the libamber that pip
# installed (flags from `amber config`) and classify the held-out digits with it.
python examples/c/write_test_set.py build/digits_test
make -s -C examples/c BUILD="$PWD/build"
build/classify build/digits.amber build/digits_test_images.npy build/digits_test_labels.npy \
  | sed -n '1,5p;$p'
