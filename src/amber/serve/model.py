"""One ``.amber`` entry point as a KServe model: the Open Inference Protocol's metadata,
input checks and inference on the native runtime."""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from typing import Any

import numpy as np
from kserve import Model
from kserve.errors import InvalidInput
from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse

from ..capture.dims import DimExpr
from ..errors import AmberError
from ..model import Model as AmberProgram
from .batching import Batcher
from .metrics import METRICS

# Open Inference Protocol datatypes <-> NumPy
_V2_OF_NP = {np.dtype(np.bool_): "BOOL", np.dtype(np.uint8): "UINT8",
             np.dtype(np.int8): "INT8", np.dtype(np.int16): "INT16",
             np.dtype(np.int32): "INT32", np.dtype(np.int64): "INT64",
             np.dtype(np.float16): "FP16", np.dtype(np.float32): "FP32",
             np.dtype(np.float64): "FP64"}


MIN_ROWS = 3
"""Rows a batch-dim entry runs at the least (see AmberEntryModel._run_arrays)."""


def v2_datatype(dtype: np.dtype) -> str:
    return _V2_OF_NP.get(np.dtype(dtype), str(np.dtype(dtype)).upper())


def served_names(file_stem: str, entries: list[str]) -> dict[str, str]:
    """Model names for a file's entry points: ``forward`` is served as ``{stem}``, every
    other entry ``e`` as ``{stem}.{e}``."""
    return {e: file_stem if e == "forward" else f"{file_stem}.{e}" for e in entries}


class _Port:
    def __init__(self, name: str, dtype: np.dtype, shape: tuple[Any, ...]) -> None:
        self.name, self.dtype, self.shape = name, np.dtype(dtype), shape
        self.datatype = v2_datatype(self.dtype)

    def metadata(self) -> dict[str, Any]:
        return {"name": self.name, "datatype": self.datatype,
                "shape": [d if isinstance(d, int) else -1 for d in self.shape]}


class AmberEntryModel(Model):
    """Serves entry point ``entry`` of a loaded ``.amber`` file under ``name``.

    Inference runs in ``executor`` (one native session per worker thread; the C call
    releases the GIL). With ``batcher_options`` and an entry whose inputs and outputs
    all lead with one symbolic dim, concurrent requests are batched along it."""

    def __init__(self, name: str, program: AmberProgram, entry: str,
                 executor: concurrent.futures.Executor, version: str,
                 batcher_options: dict[str, Any] | None = None) -> None:
        super().__init__(name)
        self.program, self.entry, self.executor, self.version = program, entry, executor, version
        sig = program.signature(entry)
        self.inputs = [_Port(p.name, p.dtype.np, tuple(p.shape)) for p in sig.inputs]
        self.outputs = [_Port(p.name, p.dtype.np, tuple(p.shape)) for p in sig.outputs]
        self.batcher: Batcher | None = None
        self.rows_first = self._batchable()
        if batcher_options and batcher_options.get("max_batch", 1) > 1 and self.rows_first:
            self.batcher = Batcher(self._run_arrays, name=name, **batcher_options)
        self.ready = True

    def _batchable(self) -> bool:
        """Inputs and outputs lead with one batch symbol, and no output size is decided by
        the data (a symbol no input has, docs/format.md H.6): a loop that runs until every
        row is done couples the rows, so another request's rows would change the answer."""
        given = {s for p in self.inputs for d in p.shape if isinstance(d, DimExpr)
                 for s in d.symbols}
        if any(isinstance(d, DimExpr) and not d.symbols <= given
               for p in self.outputs for d in p.shape):
            return False
        lead = {p.shape[0] if p.shape else None for p in self.inputs + self.outputs}
        first = next(iter(lead))
        return len(lead) == 1 and isinstance(first, DimExpr) and first.is_symbol()

    # ---------------------------------------------------------------- metadata
    def get_input_types(self) -> list[dict[str, Any]]:
        return [p.metadata() for p in self.inputs]

    def get_output_types(self) -> list[dict[str, Any]]:
        return [p.metadata() for p in self.outputs]

    # ---------------------------------------------------------------- inference
    def _decode(self, request: InferRequest) -> list[np.ndarray]:
        """The request's tensors in the entry's input order, each checked against the
        signature (name, datatype, rank, static dims, one size per symbol)."""
        given: dict[str, Any] = {}
        for inp in request.inputs:
            if inp.name in given:
                raise InvalidInput(f"{self.name}: input {inp.name!r} is given twice")
            given[inp.name] = inp
        expected = {p.name for p in self.inputs}
        unknown = sorted(set(given) - expected)
        missing = [p.name for p in self.inputs if p.name not in given]
        if unknown or missing:
            raise InvalidInput(
                f"{self.name}: " + "; ".join(
                    ([f"unknown input(s) {', '.join(map(repr, unknown))}"] if unknown else [])
                    + ([f"missing input(s) {', '.join(map(repr, missing))}"] if missing
                       else [])) + f"; the model takes {', '.join(sorted(expected))}")
        bound: dict[str, int] = {}
        return [self._check(p, given[p.name], bound) for p in self.inputs]

    def _check(self, port: _Port, inp: Any, bound: dict[str, int]) -> np.ndarray:
        if inp.datatype != port.datatype:
            raise InvalidInput(f"{self.name}: input {port.name!r} has datatype {inp.datatype}, "
                               f"the model expects {port.datatype}")
        shape = [int(d) for d in inp.shape]
        if len(shape) != len(port.shape):
            raise InvalidInput(f"{self.name}: input {port.name!r} has shape {shape}, the "
                               f"model expects rank {len(port.shape)} "
                               f"{port.metadata()['shape']}")
        for i, (got, want) in enumerate(zip(shape, port.shape, strict=True)):
            if got < 0 or (isinstance(want, int) and got != want):
                raise InvalidInput(f"{self.name}: input {port.name!r} has shape {shape}; dim "
                                   f"{i} must be {want}")
            if isinstance(want, DimExpr) and want.is_symbol():
                sym = str(want)
                if bound.setdefault(sym, got) != got:
                    raise InvalidInput(f"{self.name}: input {port.name!r} has {sym}={got}, "
                                       f"another input has {sym}={bound[sym]}")
        need = int(np.prod(shape))
        try:
            array = inp.as_numpy()
        except Exception as e:
            raise InvalidInput(f"{self.name}: input {port.name!r} does not hold the {need} "
                               f"values its shape {shape} needs ({e})") from e
        if array.size != need:
            raise InvalidInput(f"{self.name}: input {port.name!r} does not hold the {need} "
                               f"values its shape {shape} needs (it holds {array.size})")
        return np.ascontiguousarray(array.reshape(shape), dtype=port.dtype)

    def _run_arrays(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        """Run the entry; for one whose inputs and outputs lead with a batch dim, at least
        ``MIN_ROWS`` rows (a smaller request's last row repeated, the extra rows dropped):
        the native runtime computes one or two rows by another summation order (GEMV) than
        three or more (GEMM), so every answer then has the bits it has in any batch."""
        rows = int(arrays[0].shape[0]) if self.rows_first and arrays else MIN_ROWS
        if rows >= MIN_ROWS or rows == 0:
            return self._run_exact(arrays)
        padded = [np.concatenate([a, np.repeat(a[-1:], MIN_ROWS - rows, axis=0)])
                  for a in arrays]
        return [np.ascontiguousarray(r[:rows]) for r in self._run_exact(padded)]

    def _run_exact(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        native = self.program.native
        if native is not None:
            return native.session().run(self.entry, arrays)
        from .._tree import tree_flatten

        leaves, _ = tree_flatten(self.program.run(self.entry, *arrays))
        return [leaf.numpy() for leaf in leaves]

    async def predict(self, payload: InferRequest, headers: dict[str, str] | None = None,
                      response_headers: dict[str, str] | None = None) -> InferResponse:
        start = time.perf_counter()
        status = "error"
        try:
            arrays = self._decode(payload)
            if self.batcher is not None:
                results = await self.batcher.submit(arrays)
            else:
                loop = asyncio.get_running_loop()
                results = await loop.run_in_executor(self.executor, self._run_arrays, arrays)
            status = "success"
        except InvalidInput:
            status = "invalid_input"
            raise
        except AmberError as e:  # the runtime refused the values (a typed amber error)
            status = "invalid_input"
            raise InvalidInput(f"{self.name}: {type(e).__name__}: {e}") from e
        finally:
            METRICS.observe(self.name, status, time.perf_counter() - start)
        return self._response(payload, results)

    def _response(self, request: InferRequest, results: list[np.ndarray]) -> InferResponse:
        binary = request.use_binary_outputs
        wanted = {o.name for o in (request.request_outputs or [])}
        outputs = []
        for port, value in zip(self.outputs, results, strict=True):
            if wanted and port.name not in wanted:
                continue
            value = np.asarray(value)
            out = InferOutput(name=port.name, shape=list(value.shape),
                              datatype=v2_datatype(value.dtype))
            out.set_data_from_numpy(value, binary_data=binary)
            outputs.append(out)
        return InferResponse(response_id=request.id or "", model_name=self.name,
                             model_version=self.version, infer_outputs=outputs,
                             from_grpc=request.from_grpc, use_binary_outputs=binary)
