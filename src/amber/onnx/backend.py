"""amber as an ONNX backend (``onnx.backend.base.Backend``), so ONNX's backend test
suite and code written for ``onnxruntime.backend`` run on amber::

    import amber.onnx.backend as backend
    rep = backend.prepare(model)           # an onnx.ModelProto, its bytes or a path
    outputs = rep.run([x])                 # or backend.run_model(model, [x])

A prepared model is imported (``amber.from_onnx``, without the proof) once per set of
input shapes and dtypes it is run with, and runs on the reference interpreter
(``backend="reference"``, the default) or on libamber (``backend="native"``).
"""

from __future__ import annotations

import io
from collections import namedtuple
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from onnx.backend.base import Backend, BackendRep

import onnx

from ..capture.ir import Program
from ..errors import AmberError, UnsupportedError
from .importer import clean_name, from_onnx, load_model


def _with_shapes(model: Any, feeds: Mapping[str, np.ndarray], static: set[str]) -> Any:
    """A copy of the model whose inputs have the feeds' static shapes; the inputs in
    ``static`` become initializers holding the fed values."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    for name in static:
        m.graph.initializer.append(onnx.numpy_helper.from_array(feeds[name], name))
    for vi in m.graph.input:
        a = feeds.get(vi.name)
        if a is None or vi.type.WhichOneof("value") != "tensor_type":
            continue
        shape = vi.type.tensor_type.shape
        shape.ClearField("dim")
        for d in a.shape:
            shape.dim.add().dim_value = int(d)
    return m


class AmberRep(BackendRep):
    """A prepared ONNX model: ``run(inputs)`` returns the outputs in graph order."""

    def __init__(self, model: Any, base_dir: str | None, backend: str) -> None:
        self.model = model
        self.base_dir = base_dir
        self.backend = backend
        init = {t.name for t in model.graph.initializer}
        self.input_names = [vi.name for vi in model.graph.input if vi.name not in init]
        self.output_names = [o.name for o in model.graph.output]
        self._cache: dict[tuple, Any] = {}
        # inputs that set shapes, axes or sizes: the program is specialised to their values
        self.static_inputs: set[str] = set()

    def _import(self, feeds: Mapping[str, np.ndarray]) -> Program:
        while True:
            model = _with_shapes(self.model, feeds, self.static_inputs)
            try:
                return from_onnx(model, check=False, base_dir=self.base_dir)
            except UnsupportedError as e:
                name = getattr(e, "needs_value", None)
                if not isinstance(name, str):
                    raise
                if name in feeds and name not in self.static_inputs:
                    self.static_inputs.add(name)
                    continue
                # computed from the inputs: specialise on every small input (shape data
                # such as a target size, scalars such as a range's bounds), once
                more = {n for n, a in feeds.items() if a.size <= 64
                        and n not in self.static_inputs}
                if not more:
                    raise
                self.static_inputs |= more

    def program_for(self, feeds: Mapping[str, np.ndarray]) -> Any:
        key = tuple((n, a.shape, a.dtype.str, a.tobytes() if n in self.static_inputs
                     else None) for n, a in feeds.items())
        hit = self._cache.get(key)
        if hit is None:
            hit = self._import(feeds)
            key = tuple((n, a.shape, a.dtype.str, a.tobytes() if n in self.static_inputs
                         else None) for n, a in feeds.items())
            if self.backend == "native":
                from ..model import load

                buf = io.BytesIO()
                hit.save(buf)
                hit = load(buf.getvalue(), backend="native")
            self._cache[key] = hit
        return hit

    def run(self, inputs: Any, **kwargs: Any) -> tuple[Any, ...]:
        vals = list(inputs.values()) if isinstance(inputs, Mapping) else (
            [inputs] if isinstance(inputs, np.ndarray) else list(inputs))
        if any(isinstance(v, (list, tuple, dict)) or v is None for v in vals):
            raise UnsupportedError("sequence, map and optional inputs are not supported "
                                   "(amber imports tensors only)")
        if isinstance(inputs, Mapping):
            feeds = {k: np.asarray(v) for k, v in inputs.items()}
        else:
            arrs = [inputs] if isinstance(inputs, np.ndarray) else list(inputs)
            if len(arrs) > len(self.input_names):
                raise AmberError(f"{len(arrs)} inputs for a model with "
                                 f"{len(self.input_names)}")
            feeds = {n: np.asarray(a) for n, a in zip(self.input_names, arrs)}
        prog = self.program_for(feeds)
        program = prog if isinstance(prog, Program) else prog.program
        ep = program.entries["forward"]
        by_clean = {clean_name(n): a for n, a in feeds.items() if n not in self.static_inputs}
        arrays = [by_clean[p.name] for p in ep.inputs]
        if isinstance(prog, Program):
            outs = prog.run("forward", *arrays)
        else:
            session = prog.native.session()
            outs = session.run("forward", arrays)
        fields = [clean_name(n) or f"out{i}" for i, n in enumerate(self.output_names)]
        tup = namedtuple("Outputs", fields, rename=True)  # type: ignore[misc]
        return tuple(tup(*[np.asarray(o) for o in outs]))


class AmberBackend(Backend):
    """amber as an ONNX backend (CPU)."""

    @classmethod
    def is_compatible(cls, model: Any, device: str = "CPU", **kwargs: Any) -> bool:
        return cls.supports_device(device)

    @classmethod
    def prepare(cls, model: Any, device: str = "CPU", **kwargs: Any) -> AmberRep:
        if not cls.supports_device(device):
            raise AmberError(f"amber's ONNX backend runs on CPU, not {device!r}")
        proto, base_dir = load_model(model)
        return AmberRep(proto, kwargs.get("base_dir", base_dir),
                        kwargs.get("backend", "reference"))

    @classmethod
    def run_model(cls, model: Any, inputs: Any, device: str = "CPU", **kwargs: Any
                  ) -> tuple[Any, ...]:
        return cls.prepare(model, device, **kwargs).run(inputs)

    @classmethod
    def run_node(cls, node: Any, inputs: Any, device: str = "CPU",
                 outputs_info: Sequence[tuple[Any, Any]] | None = None,
                 **kwargs: Any) -> tuple[Any, ...]:
        arrs = [np.asarray(a) for a in (inputs.values() if isinstance(inputs, Mapping)
                                        else inputs)]
        names = [n for n in node.input if n]
        vis = [onnx.helper.make_tensor_value_info(
            n, onnx.helper.np_dtype_to_tensor_dtype(a.dtype), a.shape)
            for n, a in zip(names, arrs)]
        outs = [onnx.helper.make_empty_tensor_value_info(o) for o in node.output if o]
        graph = onnx.helper.make_graph([node], "node", vis, outs)
        opset = kwargs.get("opset_version", onnx.defs.onnx_opset_version())
        model = onnx.helper.make_model(
            graph, opset_imports=[onnx.helper.make_opsetid(node.domain or "", opset)])
        return cls.prepare(model, device).run(arrs)

    @classmethod
    def supports_device(cls, device: str) -> bool:
        return str(device).upper().startswith("CPU")


is_compatible = AmberBackend.is_compatible
prepare = AmberBackend.prepare
run = AmberBackend.run_model
run_model = AmberBackend.run_model
run_node = AmberBackend.run_node
supports_device = AmberBackend.supports_device

__all__ = ["AmberBackend", "AmberRep", "is_compatible", "prepare", "run", "run_model",
           "run_node", "supports_device"]
