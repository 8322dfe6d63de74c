"""amber: write models imperatively, ship them as one self-contained file.

``import amber as am`` gives a PyTorch-like API: tensors, autograd, ``am.nn`` and
``am.optim``."""

from __future__ import annotations

from . import _memory, ops  # (_memory tunes malloc for eager mode's many arrays, at import)
from ._dtype import (
    DType,
    as_dtype,
    bfloat16,
    bool_,
    float16,
    float32,
    float64,
    int8,
    int16,
    int32,
    int64,
    uint8,
)
from ._threads import get_num_threads, set_num_threads
from ._tree import tree_flatten, tree_map, tree_unflatten
from .autograd import grad_fn as grad
from .autograd import value_and_grad
from .composite import (
    allclose,
    bincount,
    bucketize,
    clamp_max,
    clamp_min,
    count_nonzero,
    cummax,
    cummin,
    cumprod,
    cumsum,
    diag,
    diff,
    fmod,
    gather,
    index_add,
    index_copy,
    index_fill,
    index_select,
    isclose,
    isfinite,
    isinf,
    isnan,
    lerp,
    logcumsumexp,
    meshgrid,
    repeat_interleave,
    roll,
    scatter,
    scatter_add,
    searchsorted,
    take_along_dim,
)
from .composite import diagonal_ as diagonal
from .creation import (
    Generator,
    arange,
    as_tensor,
    default_generator,
    empty,
    eye,
    from_dlpack,
    from_numpy,
    full,
    full_like,
    linspace,
    manual_seed,
    ones,
    ones_like,
    rand,
    rand_like,
    randint,
    randn,
    randn_like,
    randperm,
    tensor,
    zeros,
    zeros_like,
)
from .dynamic import argwhere, masked_select, nonzero, unique
from .errors import (
    AmberError,
    ArgumentError,
    AutogradError,
    CaptureError,
    DeviceError,
    DTypeError,
    FormatError,
    OutOfRangeError,
    ShapeError,
    UnsupportedCheckpointError,
)
from .functional import (
    abs,
    add,
    all,
    amax,
    amin,
    any,
    argmax,
    argmin,
    bmm,
    broadcast_tensors,
    broadcast_to,
    cast,
    cat,
    ceil,
    chunk,
    clamp,
    clip,
    clone,
    concat,
    concatenate,
    cos,
    div,
    divide,
    dot,
    einsum,
    eq,
    equal,
    erf,
    exp,
    expand,
    flatten,
    flip,
    floor,
    floor_divide,
    ge,
    greater,
    greater_equal,
    gt,
    le,
    less,
    less_equal,
    log,
    log_softmax,
    logical_and,
    logical_not,
    logical_or,
    logsumexp,
    lt,
    masked_fill,
    matmul,
    max,
    maximum,
    mean,
    min,
    minimum,
    mm,
    mul,
    narrow,
    ne,
    neg,
    not_equal,
    outer,
    permute,
    pow,
    prod,
    relu,
    remainder,
    repeat,
    reshape,
    round,
    rsqrt,
    sigmoid,
    sign,
    sin,
    softmax,
    split,
    sqrt,
    square,
    squeeze,
    stack,
    std,
    sub,
    sum,
    t,
    tanh,
    transpose,
    tril,
    triu,
    true_divide,
    trunc,
    unsqueeze,
    var,
    where,
)
from .linalg import det
from .linalg import torch_norm as norm
from .ops.registry import (
    enable_grad,
    inference_mode,
    is_grad_enabled,
    is_inference_mode_enabled,
    no_grad,
    set_grad_enabled,
)
from .sorting import argsort, kthvalue, median, msort, sort, topk
from .tensor import Tensor

bool = bool_
float = float32
double = float64
long = int64
int = int32
half = float16
short = int16

from . import autograd, backends, control, cuda, distributed, linalg, nn, onnx, optim, utils
from ._device import device
from .capture import Program, Spec, export, spec
from .checkpoint import save
from .control import cond, fori_loop, function, scan, while_loop
from .dtype_info import finfo, iinfo
from .errors import (
    ControlFlowError,
    ExportError,
    IRError,
    IterationLimitError,
    LimitError,
    LinkError,
    RecursionLimitError,
    SeamError,
    UnsupportedError,
)
from .model import BackendFallbackWarning, Model, load
from .onnx import from_onnx

__version__ = "0.1.0"
