"""The reference interpreter: runs a Program with the op registry's NumPy kernels.

It is the oracle every other amber runtime is checked against. Inputs are checked
against the entry point's signature (dtype, rank, static dims, consistent symbolic
dims); symbolic dims are bound from the inputs and every attribute and declared type is
evaluated with them; each kernel's result is checked against the declared type."""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from . import limits as L
from ._dtype import from_numpy_dtype
from ._inputs import gather_args, input_array
from .capture.dims import DimExpr, evaluate, format_dim
from .capture.ir import EntryPoint, Function, Program, bound_symbol, format_type
from .capture.walk import Frame, Walker
from .errors import (
    AmberError,
    DTypeError,
    IRError,
    IterationLimitError,
    LimitError,
    RecursionLimitError,
    ShapeError,
)
from .ops.registry import REGISTRY

_UNSET: Any = object()

# The same limits, defaults and meaning as libamber's amber_options (docs/c-api.md).
DEFAULT_MEMORY_LIMIT = L.MEMORY_LIMIT  # bytes the values of one run may hold (2 GiB)
DEFAULT_MAX_CALL_DEPTH = L.MAX_CALL_DEPTH
DEFAULT_MAX_LOOP_ITERATIONS = L.MAX_LOOP_ITERATIONS  # one while loop; one scan's length
DEFAULT_MAX_RUN_ITERATIONS = L.MAX_RUN_ITERATIONS  # all loops of one run (nested multiply)
DEFAULT_MAX_RUN_CALLS = L.MAX_RUN_CALLS  # executions of call and cond nodes in one run
DEFAULT_MAX_ITERATIONS = DEFAULT_MAX_LOOP_ITERATIONS


class _Budget:
    """What one run may still spend: loop iterations, calls, and bytes of live values."""

    __slots__ = ("iterations", "calls", "held")

    def __init__(self, iterations: int | None, calls: int | None) -> None:
        self.iterations = iterations
        self.calls = calls
        self.held = 0


_PLAIN = (int, float, str)
"""Attribute values that hold no dim expression (evaluated as they are)."""


def _eval_attr(v: Any, env: Mapping[str, int]) -> Any:
    if isinstance(v, DimExpr):
        return evaluate(v, env)
    if isinstance(v, tuple):  # NOTE: a plain int stays as it is (the common case)
        return tuple([x if type(x) is int else _eval_attr(x, env) for x in v])
    return v


def _to_array(x: Any, dtype: np.dtype, what: str, memory_limit: int | None = None
              ) -> np.ndarray:
    from .tensor import Tensor

    if isinstance(x, Tensor):
        return x.detach().numpy()
    if isinstance(x, np.ndarray):  # as libamber takes it (amber._inputs)
        return input_array(x, what, memory_limit)
    if isinstance(x, np.generic):
        return input_array(np.asarray(x), what, memory_limit)
    try:
        return np.asarray(x, dtype=dtype)  # Python scalars / nested lists
    except (TypeError, ValueError, OverflowError) as e:
        raise DTypeError(f"{what}: cannot convert {type(x).__name__} to {dtype}: {e}") from None


class _Held:
    """What one execution of a function holds: the run's budget, the values it allocated
    (-> bytes), which values die after each node, the declared shapes of the node being
    run (None: known only after it ran)."""

    __slots__ = ("budget", "owned", "dead", "shapes")

    def __init__(self, budget: _Budget, dead: list[list[int]]) -> None:
        self.budget = budget
        self.owned: dict[int, int] = {}
        self.dead = dead
        self.shapes: list[tuple[int, ...]] | None = None


class Interpreter(Walker[np.ndarray]):
    """Runs the functions of ``program`` within the limits libamber applies (the same
    defaults; docs/c-api.md, "Options"), each a :class:`amber.LimitError`:

    - ``memory_limit``: bytes the values of one run may hold at once (intermediate and
      result tensors; inputs, weights and constants are used in place);
    - ``max_call_depth``: nesting of function executions (``call`` and the functions of
      ``cond``, ``while`` and ``scan``): :class:`amber.RecursionLimitError`;
    - ``max_loop_iterations`` (alias ``max_iterations``): iterations of one ``while``
      (a node's own ``max_iterations``, when smaller, wins) and the length of one
      ``scan``: :class:`amber.IterationLimitError`;
    - ``max_run_iterations``: loop iterations of one run, all loops together (nested
      loops multiply): :class:`amber.IterationLimitError`;
    - ``max_run_calls``: executions of ``call`` and ``cond`` nodes in one run, at every
      depth (a recursion that calls itself twice per level stays within the depth).

    ``None`` (or 0) means no limit, except for the depth."""

    def __init__(self, program: Program, *, memory_limit: int | None = DEFAULT_MEMORY_LIMIT,
                 max_call_depth: int = DEFAULT_MAX_CALL_DEPTH,
                 max_loop_iterations: int | None = DEFAULT_MAX_LOOP_ITERATIONS,
                 max_run_iterations: int | None = DEFAULT_MAX_RUN_ITERATIONS,
                 max_run_calls: int | None = DEFAULT_MAX_RUN_CALLS,
                 max_iterations: Any = _UNSET) -> None:
        self.program = program
        self.memory_limit = memory_limit or None
        self.max_call_depth = max_call_depth
        if max_iterations is not _UNSET:
            max_loop_iterations = max_iterations
        self.max_iterations = max_loop_iterations or None
        self.max_run_iterations = max_run_iterations or None
        self.max_run_calls = max_run_calls or None
        self._live_cache: dict[int, tuple[Function, int, list[list[int]]]] = {}
        self._local = threading.local()

    @property
    def max_loop_iterations(self) -> int | None:
        return self.max_iterations

    def _budget(self) -> _Budget:
        b = getattr(self._local, "budget", None)
        if b is None:
            b = self._local.budget = _Budget(self.max_run_iterations, self.max_run_calls)
        return b

    # -- entry points ---------------------------------------------------------------
    def bind_inputs(self, entry: EntryPoint, args: Sequence[Any],
                    kwargs: Mapping[str, Any]) -> tuple[list[np.ndarray], dict[str, int]]:
        """Order, convert and check inputs; return them and the symbol bindings."""
        names = [p.name for p in entry.inputs]
        given = dict(zip(names, gather_args(entry.name, names, args, kwargs)))
        env: dict[str, int] = {}
        arrays = []
        for port in entry.inputs:
            what = f"{entry.name}: input {port.name!r}"
            a = _to_array(given[port.name], port.dtype.np, what, self.memory_limit)
            try:
                dt = from_numpy_dtype(a.dtype)
            except DTypeError:
                dt = None
            if dt is not port.dtype:
                raise DTypeError(f"{what} must be {port.dtype.name}, got {a.dtype}; convert "
                                 f"it with .astype(np.{port.dtype.np.name})")
            if a.ndim != len(port.shape):
                raise ShapeError(f"{what} must have shape {format_type(port.aval)} (rank "
                                 f"{len(port.shape)}), got shape {tuple(a.shape)}")
            for i, (d, n) in enumerate(zip(port.shape, a.shape)):
                if isinstance(d, DimExpr):
                    s = d.name
                    if n < 1:
                        raise ShapeError(f"{what}: dim {i} ({s}) must be >= 1, got {n}")
                    if s in env and env[s] != n:
                        raise ShapeError(f"{what}: dim {i} is {s} = {n}, but another input "
                                         f"set {s} = {env[s]}")
                    env[s] = int(n)
                elif d != n:
                    raise ShapeError(f"{what} must have shape {format_type(port.aval)}, got "
                                     f"{tuple(a.shape)} (dim {i} must be {d})")
            arrays.append(a)
        return arrays, env

    def run(self, entry_name: str, /, *args: Any, **kwargs: Any) -> list[np.ndarray]:
        """Run an entry point; inputs positionally or by name. Returns the outputs (in
        signature order) as NumPy arrays."""
        entry = self.program.entry(entry_name)
        arrays, env = self.bind_inputs(entry, args, kwargs)
        fn = self.program.functions[entry.function]
        self._local.budget = _Budget(self.max_run_iterations, self.max_run_calls)
        try:
            return self.walk(fn, arrays, env, 0)
        except RecursionError:
            raise RecursionLimitError(
                f"{entry.name}: Python's stack ran out while running nested functions, "
                f"before max_call_depth={self.max_call_depth} was reached; lower "
                f"max_call_depth") from None

    # -- functions ------------------------------------------------------------------
    def run_function(self, fn: Function, args: Sequence[np.ndarray], env: dict[str, int],
                     depth: int) -> list[np.ndarray]:
        """Run ``fn`` on arrays whose symbols are bound in ``env``."""
        return self.walk(fn, args, env, depth)

    def enter(self, frame: Frame[np.ndarray]) -> None:
        frame.state = _Held(self._budget(), self._liveness(frame.fn))

    def leave(self, frame: Frame[np.ndarray]) -> None:
        # the caller counts the results it keeps as its node's outputs
        held = frame.state
        held.budget.held -= sum(held.owned.values())

    def before(self, frame: Frame[np.ndarray], node: Any) -> None:
        # a node binding a symbol (an opset-3 while) has output sizes known only after it
        # ran; it bounds the memory of its stacked outputs while it runs
        frame.state.shapes = (None if bound_symbol(node) is not None
                              else self._output_shapes(node, frame.env, frame))

    def store(self, frame: Frame[np.ndarray], node: Any, outs: Sequence[np.ndarray]) -> None:
        held = frame.state
        shapes = held.shapes
        if shapes is None:
            shapes = self._output_shapes(node, frame.env, frame)
        values, owned, budget = frame.values, held.owned, held.budget
        in_place = node.op in ("weight", "constant")
        for v, out, shape in zip(node.outputs, outs, shapes):
            out = np.asarray(out)
            if out.shape != shape or out.dtype != v.dtype.np:
                raise IRError(f"{frame.where()}: produced {out.dtype}{list(out.shape)} but "
                              f"the program declares {v.dtype.name}{list(shape)}")
            values[id(v)] = out
            if not in_place:
                owned[id(v)] = int(out.nbytes)
                budget.held += int(out.nbytes)
        for vid in held.dead[frame.index]:  # free intermediates after their last use
            values.pop(vid, None)
            budget.held -= owned.pop(vid, 0)

    def _output_shapes(self, node: Any, env: dict[str, int], frame: Frame[np.ndarray]
                       ) -> list[tuple[int, ...]]:
        """The declared output shapes of ``node`` evaluated in ``env``, checked together
        against the memory limit."""
        shapes = []
        need = 0
        in_place = node.op in ("weight", "constant")
        for v in node.outputs:
            aval = v.aval
            try:
                shape = tuple([d if type(d) is int else evaluate(d, env) for d in aval.shape])
            except KeyError as e:
                raise IRError(f"{frame.where()}: symbol {e.args[0]} is not bound") from None
            if shape and min(shape) < 0:
                raise ShapeError(f"{frame.where()}: output %{v.name} of type "
                                 f"{format_type(aval)} has a negative size {shape} for "
                                 f"{_fmt_env(env)}")
            if not in_place:
                need += math.prod(shape) * aval.dtype.itemsize
            shapes.append(shape)
        limit = self.memory_limit
        if limit is not None and frame.state.budget.held + need > limit:
            self._check_bytes(need, f"{frame.where()}: its outputs")
        return shapes

    def _check_bytes(self, nbytes: int, what: str) -> None:
        """Refuse to allocate ``nbytes`` more when the run's values would then hold
        more than ``memory_limit``."""
        held = self._budget().held
        if self.memory_limit is not None and held + nbytes > self.memory_limit:
            raise LimitError(f"{what}: memory limit of {self.memory_limit} bytes exceeded "
                             f"(holding {held}, need {nbytes} more; memory_limit)")

    def _liveness(self, fn: Function) -> list[list[int]]:
        """For each node index, the values whose last use is that node."""
        cached = self._live_cache.get(id(fn))
        if cached is not None and cached[0] is fn and cached[1] == len(fn.nodes):
            return cached[2]
        keep = {id(v) for v in fn.results}
        last: dict[int, int] = {}
        for i, node in enumerate(fn.nodes):
            for v in node.inputs:
                last[id(v)] = i
            for v in node.outputs:
                last.setdefault(id(v), i)
        dead: list[list[int]] = [[] for _ in fn.nodes]
        for vid, i in last.items():
            if vid not in keep:
                dead[i].append(vid)
        self._live_cache[id(fn)] = (fn, len(fn.nodes), dead)
        return dead

    # -- node kinds -------------------------------------------------------------------
    def constant(self, frame: Frame[np.ndarray], node: Any, ins: list[np.ndarray]
                 ) -> list[np.ndarray]:
        return [node.attrs["value"]]

    def weight(self, frame: Frame[np.ndarray], node: Any, ins: list[np.ndarray]
               ) -> list[np.ndarray]:
        return [self.program.weights[node.attrs["name"]]]

    def call(self, frame: Frame[np.ndarray], node: Any, ins: list[np.ndarray]
             ) -> list[np.ndarray]:
        where = frame.where()
        self._spend_call(where)
        return self._call(node.attrs["callee"], ins, frame.depth, where)

    def cond(self, frame: Frame[np.ndarray], node: Any, ins: list[np.ndarray]
             ) -> list[np.ndarray]:
        where = frame.where()
        taken = node.attrs["then"] if bool(ins[0]) else node.attrs["else"]
        self._spend_call(where)
        return self._call(taken, ins[1:], frame.depth, where)

    def while_(self, frame: Frame[np.ndarray], node: Any, ins: list[np.ndarray]
               ) -> list[np.ndarray]:
        return self._while(node, ins, frame.env, frame.depth, frame.where())

    def scan(self, frame: Frame[np.ndarray], node: Any, ins: list[np.ndarray]
             ) -> list[np.ndarray]:
        return self._scan(node, ins, frame.env, frame.depth, frame.where())

    def primitive(self, frame: Frame[np.ndarray], node: Any, ins: list[np.ndarray]
                  ) -> list[np.ndarray]:
        op = node.op
        prim = REGISTRY.get(op)
        if prim is None:
            raise IRError(f"{frame.where()}: unknown op {op!r}")
        env = frame.env
        attrs = {k: v if isinstance(v, _PLAIN) else _eval_attr(v, env)
                 for k, v in node.attrs.items()}
        try:
            return [prim.impl(*ins, **attrs)]
        except AmberError as e:
            raise type(e)(f"{frame.where()}: {e}") from None
        except (ValueError, IndexError, TypeError, ArithmeticError) as e:
            raise AmberError(f"{frame.where()}: kernel failed: {e}") from None
        except MemoryError:
            raise LimitError(f"{frame.where()}: the system is out of memory (lower the input "
                             f"sizes, or memory_limit so that runs stop before this)") from None

    def _call(self, name: str, args: list[np.ndarray], depth: int,
              where: str) -> list[np.ndarray]:
        """Run function ``name`` one level deeper, binding its symbols from ``args``."""
        if depth + 1 > self.max_call_depth:
            raise RecursionLimitError(
                f"{where}: call depth {depth + 1} (running function {name!r}) exceeds the "
                f"limit of {self.max_call_depth} nested function executions (max_call_depth)")
        callee = self.program.functions[name]
        cenv: dict[str, int] = {}
        for i, (p, a) in enumerate(zip(callee.params, args)):
            for k, (d, n) in enumerate(zip(p.shape, a.shape)):
                if isinstance(d, DimExpr) and d.is_symbol():
                    if n < 1:  # symbols denote sizes >= 1 (docs/format.md H.2), as in C
                        raise ShapeError(f"{where}: function {name!r}, argument {i} dim {k} "
                                         f"({d.name}) must be >= 1, got {n}: a symbolic size "
                                         f"is never 0 (a recursion on shrinking slices must "
                                         f"stop before a slice is empty)")
                    cenv[d.name] = int(n)
        return self.walk(callee, args, cenv, depth + 1)  # NOTE: no extra Python frame

    def _spend_call(self, where: str) -> None:
        b = self._budget()
        if b.calls is not None:
            if b.calls <= 0:
                raise LimitError(f"{where}: the run executed more than {self.max_run_calls} "
                                 f"function calls in all (max_run_calls)")
            b.calls -= 1

    def _spend_iteration(self, where: str) -> None:
        b = self._budget()
        if b.iterations is not None:
            if b.iterations <= 0:
                raise IterationLimitError(
                    f"{where}: the run made more than {self.max_run_iterations} loop "
                    f"iterations in all (max_run_iterations)")
            b.iterations -= 1

    def _iteration_limit(self, node: Any) -> int | None:
        own = node.attrs.get("max_iterations")
        lims = [x for x in (own, self.max_iterations) if x is not None]
        return min(lims) if lims else None

    def _while(self, node: Any, ins: list[np.ndarray], env: dict[str, int], depth: int,
               where: str) -> list[np.ndarray]:
        n = node.attrs["num_carries"]
        n_stacked = node.attrs.get("num_stacked", 0)
        carries, extra = list(ins[:n]), list(ins[n:])
        limit = self._iteration_limit(node)
        rows: list[list[np.ndarray]] = [[] for _ in range(n_stacked)]
        row_bytes = 0
        k = 0
        while bool(self._call(node.attrs["cond"], carries + extra, depth, where)[0]):
            if limit is not None and k >= limit:
                raise IterationLimitError(
                    f"{where}: the loop (body {node.attrs['body']!r}) was about to run "
                    f"iteration {k + 1}, past the limit of {limit} iterations")
            self._spend_iteration(where)
            out = self._call(node.attrs["body"], carries + extra, depth, where)
            carries = out[:n]
            if n_stacked:
                if k == 0:
                    row_bytes = max(int(y.nbytes) for y in out[n:])
                self._check_bytes((k + 1) * row_bytes,
                                  f"{where}: a stacked output after {k + 1} iterations")
                for col, y in zip(rows, out[n:]):
                    col.append(y)
            k += 1
        trip = node.attrs.get("trip_dim")
        if trip is None:
            return carries
        env[trip] = k
        stacked = []
        for col, v in zip(rows, node.outputs[n:]):
            if col:  # np.stack checks that every iteration gave the same shape
                try:
                    stacked.append(np.stack(col, 0))
                except ValueError as e:
                    raise ShapeError(f"{where}: per-iteration outputs differ in shape: "
                                     f"{e}") from None
            else:
                shape = tuple(evaluate(d, env) for d in v.shape)
                stacked.append(np.zeros(shape, v.dtype.np))
        return carries + stacked

    def _scan(self, node: Any, ins: list[np.ndarray], env: dict[str, int], depth: int,
              where: str) -> list[np.ndarray]:
        n, m = node.attrs["num_carries"], node.attrs["num_xs"]
        length = int(_eval_attr(node.attrs["length"], env))
        if self.max_iterations is not None and length > self.max_iterations:
            raise IterationLimitError(f"{where}: scan length {length} exceeds the limit of "
                                      f"{self.max_iterations} iterations")
        carries, xs, extra = list(ins[:n]), ins[n:n + m], list(ins[n + m:])
        body = self.program.functions[node.attrs["body"]]
        n_ys = len(body.results) - n
        ys: list[list[np.ndarray]] = [[] for _ in range(n_ys)]
        order = range(length - 1, -1, -1) if node.attrs["reverse"] else range(length)
        for i in order:
            self._spend_iteration(where)
            out = self._call(body.name, carries + [x[i] for x in xs] + extra, depth, where)
            carries = out[:n]
            for j, y in enumerate(out[n:]):
                ys[j].append(y)
        stacked = []
        for j, r in enumerate(body.results[n:]):
            if node.attrs["reverse"]:
                ys[j].reverse()
            if ys[j]:
                stacked.append(np.stack(ys[j], 0))
            else:
                shape = tuple(evaluate(d, env) for d in node.outputs[n + j].shape)
                stacked.append(np.zeros(shape, r.dtype.np))
        return carries + stacked


def _fmt_env(env: Mapping[str, int]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(env.items())) or "no symbols"


def run(program: Program, entry: str, /, *args: Any, **kwargs: Any) -> list[np.ndarray]:
    """Run entry point ``entry`` of ``program`` with the reference interpreter."""
    return Interpreter(program).run(entry, *args, **kwargs)


__all__ = ["DEFAULT_MAX_CALL_DEPTH", "DEFAULT_MAX_LOOP_ITERATIONS", "DEFAULT_MAX_RUN_CALLS",
           "DEFAULT_MAX_RUN_ITERATIONS", "DEFAULT_MEMORY_LIMIT", "Interpreter", "format_dim",
           "run"]
