"""Write the digits example's held-out images and labels as .npy files for classify.c.

    python examples/c/write_test_set.py build/digits_test   # -> _images.npy, _labels.npy

The split is the one ``examples/train_digits.py`` holds out (fixed seed), so the C
program's accuracy matches the one the training script reports."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from train_digits import load_data


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("prefix", help="write PREFIX_images.npy (float32 N x 1 x 8 x 8) and "
                                  "PREFIX_labels.npy (int64 N)")
    p.add_argument("--limit", type=int, default=None, help="only the first N images")
    args = p.parse_args()
    _, _, x, y = load_data()
    if args.limit is not None:
        x, y = x[: args.limit], y[: args.limit]
    Path(args.prefix).parent.mkdir(parents=True, exist_ok=True)
    np.save(f"{args.prefix}_images.npy", np.ascontiguousarray(x, dtype="<f4"))
    np.save(f"{args.prefix}_labels.npy", np.ascontiguousarray(y, dtype="<i8"))
    print(f"wrote {len(y)} images to {args.prefix}_images.npy and their labels to "
          f"{args.prefix}_labels.npy")


if __name__ == "__main__":
    main()
