"""``Module``: the base class of every layer, with PyTorch's registration rules.

Assigning a ``Parameter`` to an attribute registers it as a parameter, a ``Module`` as a
submodule and ``register_buffer`` declares non-trainable state (running statistics,
counters). ``state_dict`` keys are dotted paths (``"0.weight"``, ``"bn.running_mean"``),
exactly as PyTorch names them, so weights move between the two frameworks as NumPy
arrays."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from typing import Any, NamedTuple

import numpy as np

from ... import _dtype as D
from ...errors import AmberError, ShapeError
from ...hooks import RemovableHandle, add_hook
from ...ops.registry import no_grad
from ...tensor import Tensor
from ..parameter import Parameter

_HOOK_TABLES = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks",
                "_backward_pre_hooks")


class IncompatibleKeys(NamedTuple):
    """What ``load_state_dict(strict=False)`` could not match."""

    missing_keys: list[str]
    unexpected_keys: list[str]


class Module:
    """Base class of layers and models. Subclasses set attributes in ``__init__`` (after
    ``super().__init__()``) and define ``forward``; call the module to run it."""

    training: bool
    _parameters: dict[str, Parameter | None]
    _buffers: dict[str, Tensor | None]
    _non_persistent: set[str]
    _modules: dict[str, Module | None]

    def __init__(self) -> None:
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_non_persistent", set())
        object.__setattr__(self, "_modules", OrderedDict())
        for table in _HOOK_TABLES:
            object.__setattr__(self, table, OrderedDict())
        object.__setattr__(self, "_forward_hooks_with_kwargs", set())
        object.__setattr__(self, "_forward_pre_hooks_with_kwargs", set())

    # ------------------------------------------------------------------ running
    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """The computation; every subclass defines it."""
        raise AmberError(f"{type(self).__name__} does not define forward()")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        d = self.__dict__
        if d.get("_forward_hooks") or d.get("_forward_pre_hooks") \
                or d.get("_backward_hooks") or d.get("_backward_pre_hooks"):
            from ._hooks import call_with_hooks

            return call_with_hooks(self, args, kwargs)
        return self.forward(*args, **kwargs)

    # ------------------------------------------------------------------ hooks
    def _hook_table(self, name: str) -> Any:
        table = self.__dict__.get(name)
        if table is None:  # a subclass that skipped Module.__init__
            self._check_ready(name)
        return table

    def register_forward_pre_hook(self, hook: Callable[..., Any], *, prepend: bool = False,
                                  with_kwargs: bool = False) -> RemovableHandle:
        """``hook(module, args)`` runs before ``forward``; a non-None result replaces
        ``args`` (a non-tuple becomes a 1-tuple). With ``with_kwargs``:
        ``hook(module, args, kwargs) -> None | (args, kwargs)``."""
        h = add_hook(self._hook_table("_forward_pre_hooks"), hook, prepend)
        if with_kwargs:
            self._forward_pre_hooks_with_kwargs.add(h.id)
        return h

    def register_forward_hook(self, hook: Callable[..., Any], *, prepend: bool = False,
                              with_kwargs: bool = False) -> RemovableHandle:
        """``hook(module, args, output)`` runs after ``forward``; a non-None result
        replaces the output. With ``with_kwargs``: ``hook(module, args, kwargs,
        output)``."""
        h = add_hook(self._hook_table("_forward_hooks"), hook, prepend)
        if with_kwargs:
            self._forward_hooks_with_kwargs.add(h.id)
        return h

    def register_full_backward_hook(self, hook: Callable[..., Any], prepend: bool = False
                                    ) -> RemovableHandle:
        """``hook(module, grad_input, grad_output)`` runs when the gradients with respect
        to the module's tensor arguments are computed (``grad_input``: one entry per
        positional tensor argument, None where it needs no gradient; ``grad_output``:
        one per output tensor that requires grad); a non-None result (a tuple like
        ``grad_input``) replaces the input gradients. Tensor arguments (and outputs)
        that require grad must share one dtype."""
        return add_hook(self._hook_table("_backward_hooks"), hook, prepend)

    def register_full_backward_pre_hook(self, hook: Callable[..., Any], prepend: bool = False
                                        ) -> RemovableHandle:
        """``hook(module, grad_output)`` runs when the gradients with respect to the
        module's outputs are known; a non-None result replaces them."""
        return add_hook(self._hook_table("_backward_pre_hooks"), hook, prepend)

    # ------------------------------------------------------------------ registration
    def _check_ready(self, name: str) -> None:
        if "_parameters" not in self.__dict__:
            raise AmberError(
                f"cannot assign {name!r} before Module.__init__() has run; call "
                f"super().__init__() first in {type(self).__name__}.__init__"
            )

    def __setattr__(self, name: str, value: Any) -> None:
        d = self.__dict__
        if isinstance(value, Parameter):
            self._check_ready(name)
            self._discard(name)
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._check_ready(name)
            self._discard(name)
            self._modules[name] = value
        elif "_parameters" in d and name in self._parameters:
            if value is not None:
                raise AmberError(
                    f"cannot assign {type(value).__name__} to parameter {name!r} of "
                    f"{type(self).__name__}; assign an nn.Parameter or None"
                )
            self._parameters[name] = None
        elif "_modules" in d and name in self._modules:
            if value is not None:
                raise AmberError(
                    f"cannot assign {type(value).__name__} to submodule {name!r} of "
                    f"{type(self).__name__}; assign a Module or None"
                )
            self._modules[name] = None
        elif "_buffers" in d and name in self._buffers:
            if value is not None and not isinstance(value, Tensor):
                raise AmberError(
                    f"cannot assign {type(value).__name__} to buffer {name!r} of "
                    f"{type(self).__name__}; assign a Tensor or None"
                )
            self._buffers[name] = value
        else:
            object.__setattr__(self, name, value)

    def _discard(self, name: str) -> None:
        self.__dict__.pop(name, None)
        for table in (self._parameters, self._buffers, self._modules):
            table.pop(name, None)  # type: ignore[attr-defined]
        self._non_persistent.discard(name)

    def __getattr__(self, name: str) -> Any:
        d = self.__dict__
        for table in ("_parameters", "_buffers", "_modules"):
            t = d.get(table)
            if t is not None and name in t:
                return t[name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name: str) -> None:
        for table in (self._parameters, self._buffers, self._modules):
            if name in table:
                del table[name]  # type: ignore[attr-defined]
                self._non_persistent.discard(name)
                return
        object.__delattr__(self, name)

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | set(self._parameters) | set(self._buffers)
                      | set(self._modules))

    def _check_name(self, kind: str, name: str) -> None:
        self._check_ready(name)
        if not isinstance(name, str) or not name or "." in name:
            raise AmberError(f"{kind} name must be a non-empty string without '.', got {name!r}")
        if name in self.__dict__:
            raise AmberError(f"attribute {name!r} already exists on {type(self).__name__}")

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        """Add a parameter (or a ``None`` placeholder, e.g. ``bias=False``)."""
        self._check_name("parameter", name)
        if param is not None and not isinstance(param, Parameter):
            raise AmberError(f"register_parameter: {name!r} must be an nn.Parameter or None, "
                             f"got {type(param).__name__}")
        self._discard(name)
        self._parameters[name] = param

    def register_buffer(self, name: str, tensor: Tensor | None, persistent: bool = True) -> None:
        """Add non-trainable state; persistent buffers are part of ``state_dict``."""
        self._check_name("buffer", name)
        if tensor is not None and not isinstance(tensor, Tensor):
            raise AmberError(f"register_buffer: {name!r} must be a Tensor or None, got "
                             f"{type(tensor).__name__}")
        self._discard(name)
        self._buffers[name] = tensor
        if not persistent:
            self._non_persistent.add(name)

    def add_module(self, name: str, module: Module | None) -> None:
        """Add a submodule under ``name``."""
        self._check_name("module", name)
        if module is not None and not isinstance(module, Module):
            raise AmberError(f"add_module: {name!r} must be a Module or None, got "
                             f"{type(module).__name__}")
        self._discard(name)
        self._modules[name] = module

    register_module = add_module

    def get_submodule(self, target: str) -> Module:
        """The submodule at dotted path ``target`` ("" is the module itself)."""
        mod: Module = self
        if target == "":
            return mod
        for part in target.split("."):
            sub = mod._modules.get(part)
            if sub is None:
                raise AmberError(f"{type(mod).__name__} has no submodule {part!r} "
                                 f"(looking up {target!r})")
            mod = sub
        return mod

    def get_parameter(self, target: str) -> Parameter:
        """The parameter at dotted path ``target``."""
        path, _, name = target.rpartition(".")
        mod = self.get_submodule(path)
        p = mod._parameters.get(name)
        if p is None:
            raise AmberError(f"{type(mod).__name__} has no parameter {name!r}")
        return p

    # ------------------------------------------------------------------ traversal
    def named_modules(self, memo: set[int] | None = None, prefix: str = "",
                      remove_duplicate: bool = True) -> Iterator[tuple[str, Module]]:
        """(path, module) for this module and every descendant, depth first."""
        if memo is None:
            memo = set()
        if remove_duplicate:
            if id(self) in memo:
                return
            memo.add(id(self))
        yield prefix, self
        for name, m in self._modules.items():
            if m is None:
                continue
            yield from m.named_modules(memo, f"{prefix}.{name}" if prefix else name,
                                       remove_duplicate)

    def modules(self) -> Iterator[Module]:
        """This module and every descendant (each once), depth first."""
        for _, m in self.named_modules():
            yield m

    def named_children(self) -> Iterator[tuple[str, Module]]:
        """(name, module) for each direct submodule."""
        seen: set[int] = set()
        for name, m in self._modules.items():
            if m is not None and id(m) not in seen:
                seen.add(id(m))
                yield name, m

    def children(self) -> Iterator[Module]:
        """The direct submodules."""
        for _, m in self.named_children():
            yield m

    def _named_members(self, table: str, prefix: str, recurse: bool,
                       remove_duplicate: bool = True) -> Iterator[tuple[str, Any]]:
        seen: set[int] = set()
        mods = self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate) \
            if recurse else iter([(prefix, self)])
        for mprefix, m in mods:
            for name, v in getattr(m, table).items():
                if v is None or (remove_duplicate and id(v) in seen):
                    continue
                seen.add(id(v))
                yield (f"{mprefix}.{name}" if mprefix else name), v

    def named_parameters(self, prefix: str = "", recurse: bool = True,
                         remove_duplicate: bool = True) -> Iterator[tuple[str, Parameter]]:
        """(dotted name, parameter) pairs; a parameter shared by two modules appears once."""
        return self._named_members("_parameters", prefix, recurse, remove_duplicate)

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        """All parameters (each once); pass this to an optimizer."""
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix: str = "", recurse: bool = True,
                      remove_duplicate: bool = True) -> Iterator[tuple[str, Tensor]]:
        """(dotted name, buffer) pairs, including non-persistent buffers."""
        return self._named_members("_buffers", prefix, recurse, remove_duplicate)

    def buffers(self, recurse: bool = True) -> Iterator[Tensor]:
        """All buffers (running statistics, counters, ...)."""
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    def apply(self, fn: Callable[[Module], Any]) -> Module:
        """Call ``fn`` on every submodule (children first) and then on ``self``."""
        for m in self.children():
            m.apply(fn)
        fn(self)
        return self

    # ------------------------------------------------------------------ modes
    def train(self, mode: bool = True) -> Module:
        """Set training mode (Dropout drops, BatchNorm uses batch statistics)."""
        if not isinstance(mode, bool):
            raise AmberError(f"train(mode): mode must be a bool, got {type(mode).__name__}")
        for m in self.modules():
            object.__setattr__(m, "training", mode)
        return self

    def eval(self) -> Module:
        """Set evaluation mode: same as ``train(False)``."""
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True) -> Module:
        """Set ``requires_grad`` on every parameter (e.g. to freeze a model)."""
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset the gradients of all parameters (to None, or to zeros)."""
        for p in self.parameters():
            if p.grad is None:
                continue
            if set_to_none:
                p.grad = None
            else:
                p.grad = Tensor._wrap(np.zeros_like(p.grad.numpy()))

    # ------------------------------------------------------------------ dtype
    def to(self, *args: Any, **kwargs: Any) -> Module:
        """Convert floating-point parameters and buffers to a dtype, in place:
        ``model.to(am.float64)``, ``model.to("cpu")``, ``model.to(device, dtype)``,
        ``model.to(tensor)``. A device other than the CPU raises
        :class:`~amber.errors.DeviceError`."""
        from ..._device import parse_to

        dtype, _, _ = parse_to(args, kwargs, "Module.to")
        if dtype is None:
            return self
        dt = D.as_dtype(dtype)
        if not dt.is_floating:
            raise D.DTypeError(f"Module.to: only floating dtypes are allowed, got {dt.name}")
        def cast(a: np.ndarray) -> np.ndarray:  # am.cast's rule: float16 through float32
            return (a.astype(np.float32) if dt in D.COMPUTE else a).astype(dt.np)

        for t in list(self.parameters()) + list(self.buffers()):
            if t.dtype.is_floating and t.dtype is not dt:
                t._data = cast(t.detach().numpy())
                if t.grad is not None:
                    t.grad = Tensor._wrap(cast(t.grad.numpy()))
        return self

    def half(self) -> Module:
        """Convert floating parameters and buffers to float16."""
        return self.to(D.float16)

    def bfloat16(self) -> Module:
        """Convert floating parameters and buffers to bfloat16."""
        return self.to(D.bfloat16)

    def float(self) -> Module:
        """Convert floating parameters and buffers to float32."""
        return self.to(D.float32)

    def double(self) -> Module:
        """Convert floating parameters and buffers to float64."""
        return self.to(D.float64)

    def cpu(self) -> Module:
        """No-op (amber runs on the CPU); returns ``self``."""
        return self

    def cuda(self, device: Any = None) -> Module:
        """Raises :class:`~amber.errors.DeviceError`: amber has no CUDA backend."""
        from ..._device import check_cpu

        check_cpu("cuda" if device is None or isinstance(device, int) else device,
                  "Module.cuda")
        return self

    # ------------------------------------------------------------------ state
    def _local_state(self) -> Iterator[tuple[str, Tensor]]:
        for name, p in self._parameters.items():
            if p is not None:
                yield name, p
        for name, b in self._buffers.items():
            if b is not None and name not in self._non_persistent:
                yield name, b

    def state_dict(self, destination: dict[str, Any] | None = None, prefix: str = "",
                   keep_vars: bool = False) -> dict[str, Tensor]:
        """Parameters and persistent buffers by dotted name, as PyTorch orders them.
        Values are detached tensors (``keep_vars=True`` returns the objects themselves)."""
        out: dict[str, Any] = OrderedDict() if destination is None else destination
        for name, t in self._local_state():
            out[prefix + name] = t if keep_vars else t.detach()
        for name, m in self._modules.items():
            if m is not None:
                m.state_dict(out, prefix + name + ".", keep_vars)
        return out

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True,
                        assign: bool = False) -> IncompatibleKeys:
        """Copy values (amber Tensors, NumPy arrays or anything ``np.asarray`` accepts)
        into this module's parameters and buffers, converting to their dtypes.

        Shapes must match exactly; with ``strict`` the keys must match too. Raises
        ``ShapeError`` for shape mismatches and ``AmberError`` for missing or unexpected
        keys, listing all of them. ``assign`` is accepted for PyTorch compatibility;
        values are always copied."""
        if not isinstance(state_dict, Mapping):
            raise AmberError(f"load_state_dict expects a mapping of names to arrays, got "
                             f"{type(state_dict).__name__}")
        own = dict(self.state_dict(keep_vars=True))
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        name = type(self).__name__
        mismatched, staged = [], []
        for key, target in own.items():
            if key not in state_dict:
                continue
            value = state_dict[key]
            arr = value.detach().numpy() if isinstance(value, Tensor) else np.asarray(value)
            if tuple(arr.shape) != tuple(target.shape):
                mismatched.append(f"{key}: the checkpoint has shape {tuple(arr.shape)}, the "
                                  f"module has {tuple(target.shape)}")
                continue
            staged.append((target, arr))
        if mismatched:
            raise ShapeError(f"load_state_dict for {name}: size mismatch for "
                             + "; ".join(mismatched))
        if strict and (missing or unexpected):
            parts = []
            if missing:
                parts.append("missing key(s): " + ", ".join(repr(k) for k in missing))
            if unexpected:
                parts.append("unexpected key(s): " + ", ".join(repr(k) for k in unexpected))
            raise AmberError(f"load_state_dict for {name}: " + "; ".join(parts)
                             + " (pass strict=False to load the matching keys only)")
        with no_grad():
            for target, arr in staged:
                target._assign(arr.astype(target.detach().numpy().dtype, copy=False))
        return IncompatibleKeys(missing, unexpected)

    # ------------------------------------------------------------------ printing
    def extra_repr(self) -> str:
        """Constructor arguments shown by ``repr`` (override in subclasses)."""
        return ""

    def __repr__(self) -> str:
        lines = []
        extra = self.extra_repr()
        if extra:
            lines = extra.split("\n")
        for name, m in self._modules.items():
            body = repr(m).replace("\n", "\n  ")
            lines.append(f"({name}): {body}")
        head = type(self).__name__ + "("
        if not lines:
            return head + ")"
        if len(lines) == 1 and not self._modules:
            return head + lines[0] + ")"
        return head + "\n  " + "\n  ".join(lines) + "\n)"
