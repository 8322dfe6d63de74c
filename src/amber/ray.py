"""Batch inference on Ray Data: an ``.amber`` file is self-contained, so scoring a dataset
is a ``map_batches`` over a callable that opens the file once per worker.

    import ray
    from amber.ray import Predictor
    ds = ray.data.from_numpy(x)                       # a column named "data"
    scored = ds.map_batches(Predictor, fn_constructor_kwargs={"path": "model.amber",
                            "columns": {"data": "x"}}, batch_size=1024, concurrency=2,
                            batch_format="numpy")

``Predictor`` needs nothing from Ray itself (it maps a dict of NumPy columns to a dict
of NumPy columns), so the same class serves Dask's ``map_partitions`` or a plain loop;
Ray (extra ``amber[ray]``) is imported only by :func:`score`."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from ._tree import tree_flatten
from .errors import AmberError
from .model import load


class Predictor:
    """Runs entry point ``entry`` of the ``.amber`` file at ``path`` on batches of
    columns. ``columns`` maps dataset columns to the entry's inputs (default: each input
    reads the column of its own name); outputs come back as columns named after the
    entry's outputs (``outputs`` renames them). Columns listed in ``keep`` are passed
    through. ``threads`` is the native runtime's thread count per worker (default 1:
    Ray runs one worker per CPU)."""

    def __init__(self, path: str | os.PathLike[str], entry: str = "forward",
                 columns: Mapping[str, str] | None = None,
                 outputs: Mapping[str, str] | None = None, keep: tuple[str, ...] = (),
                 threads: int | None = 1) -> None:
        self.model = load(path, threads=threads)
        self.entry = entry
        sig = self.model.signature(entry)
        self.inputs = [p.name for p in sig.inputs]
        self.outputs = [p.name for p in sig.outputs]
        by_input = {v: k for k, v in (columns or {}).items()}
        unknown = set(by_input) - set(self.inputs)
        if unknown:
            raise AmberError(f"Predictor: columns map to unknown input(s) "
                             f"{', '.join(sorted(unknown))}; {entry} takes "
                             f"{', '.join(self.inputs)}")
        self.sources = [by_input.get(name, name) for name in self.inputs]
        self.names = [dict(outputs or {}).get(name, name) for name in self.outputs]
        self.keep = tuple(keep)

    def __call__(self, batch: Mapping[str, Any]) -> dict[str, np.ndarray]:
        missing = [c for c in (*self.sources, *self.keep) if c not in batch]
        if missing:
            raise AmberError(f"Predictor: the batch has no column(s) {', '.join(missing)}; "
                             f"it has {', '.join(batch)}")
        arrays = [np.ascontiguousarray(np.stack(batch[c]) if batch[c].dtype == object
                                       else batch[c]) for c in self.sources]
        native = self.model.native
        if native is not None:
            results = native.session().run(self.entry, arrays)
        else:
            leaves, _ = tree_flatten(self.model.run(self.entry, *arrays))
            results = [leaf.numpy() for leaf in leaves]
        out = {c: np.asarray(batch[c]) for c in self.keep}
        out.update(zip(self.names, (np.asarray(r) for r in results), strict=True))
        return out


def score(dataset: Any, path: str | os.PathLike[str], *, batch_size: int = 1024,
          concurrency: int | None = None, **predictor_kwargs: Any) -> Any:
    """``dataset.map_batches(Predictor, ...)``: a Ray Dataset of the model's outputs
    (plus the ``keep`` columns), one :class:`Predictor` per worker."""
    return dataset.map_batches(Predictor, fn_constructor_kwargs={"path": os.fspath(path),
                                                                  **predictor_kwargs},
                               batch_size=batch_size, concurrency=concurrency or 1,
                               batch_format="numpy")


__all__ = ["Predictor", "score"]
