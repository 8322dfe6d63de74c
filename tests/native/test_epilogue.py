"""Epilogues: when a model is loaded with fusion on, a convolution or matrix product whose
result only an elementwise chain reads (bias, BatchNorm in eval mode, ReLU, ReLU6, a
residual add) computes that chain on each block of its result as it writes it. The
fused plan must give the same bits as the nodes run one at a time (fusion off) and as
the eager run, at any thread count."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import amber as am
from amber import native as N
from amber import nn
from amber.nn import functional as F
from helpers.programs import randomise_norm_state


class ConvBnRelu(nn.Module):
    def __init__(self, cin: int, cout: int, k: int, stride: int = 1, groups: int = 1,
                 act: Any = None) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, groups=groups,
                              bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.act = act if act is not None else nn.ReLU()

    def forward(self, x: Any) -> Any:
        return self.act(self.bn(self.conv(x)))


class NestedClamp(nn.Module):
    """where(x <= lo, lo, where(x >= hi, hi, x)): ReLU6 as amber.nn exported it before
    (lo 0, hi 6), which the runtime runs as the chain it exports now; with lo above hi
    (no clamp: x <= lo gives lo, not hi) it may not."""

    def __init__(self, lo: float = 0.0, hi: float = 6.0) -> None:
        super().__init__()
        self.lo, self.hi = lo, hi

    def forward(self, x: Any) -> Any:
        return am.where(x <= self.lo, self.lo, am.where(x >= self.hi, self.hi, x))


class Residual(nn.Module):
    """conv-bn-relu, conv-bn, + the input, relu (a ResNet basic block)."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.a = ConvBnRelu(c, c, 3)
        self.conv = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(c)

    def forward(self, x: Any) -> Any:
        return F.relu(self.bn(self.conv(self.a(x))) + x)


class Clip6(nn.Module):
    """ReLU6 as clamp (maximum, then minimum): MobileNetV2's activation as exported."""

    def forward(self, x: Any) -> Any:
        return F.hardtanh(x, 0.0, 6.0)


class Projection(nn.Module):
    """conv1x1-bn added to the input (the chain the add's second operand), clamped."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c, c, 1, bias=False)
        self.bn = nn.BatchNorm2d(c)

    def forward(self, x: Any) -> Any:
        return F.hardtanh(x + self.bn(self.conv(x)), 0.0, 6.0)


class WidthBias(nn.Module):
    """A bias broadcast along the width only: strides the block view cannot express."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 5, 3, padding=1)
        self.w = nn.Parameter(am.tensor(np.linspace(-1, 1, 9).astype(np.float32)))

    def forward(self, x: Any) -> Any:
        return F.relu(self.conv(x) + self.w)


class NanShift(nn.Module):
    """A few-tap convolution, a per-channel shift with a NaN in one channel, then ReLU: the
    small-convolution kernel keeps such a chain out of its registers."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 12, 3, padding=1, bias=False)
        shift = np.linspace(-1, 1, 12).astype(np.float32)
        shift[9] = np.nan
        self.shift = nn.Parameter(am.tensor(shift.reshape(12, 1, 1)))

    def forward(self, x: Any) -> Any:
        return F.relu(self.conv(x) + self.shift)


class DwNanShift(nn.Module):
    """A depthwise convolution, a per-channel shift with a NaN in one channel, then ReLU:
    the depthwise kernels keep that channel's chain out of their registers."""

    def __init__(self, c: int, stride: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, stride=stride, padding=1, groups=c, bias=False)
        shift = np.linspace(-1, 1, c).astype(np.float32)
        shift[c // 2] = np.nan
        self.shift = nn.Parameter(am.tensor(shift.reshape(c, 1, 1)))

    def forward(self, x: Any) -> Any:
        return F.relu(self.conv(x) + self.shift)


class Shared(nn.Module):
    """The product read by the chain and by another op: not an epilogue."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1, bias=False)

    def forward(self, x: Any) -> Any:
        y = self.conv(x)
        return F.relu(y) + am.sum(y, dim=(1, 2, 3), keepdim=True)  # (per image)


class ShiftedGelu(nn.Module):
    """A Linear, a row added, then the tanh GELU: two steps before the GELU's nine."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.fc = nn.Linear(cin, cout)
        self.w = nn.Parameter(am.tensor(np.linspace(-1, 1, cout).astype(np.float32)))

    def forward(self, x: Any) -> Any:
        return F.gelu(self.fc(x) + self.w, approximate="tanh")


class GeluInnerReused(nn.Module):
    """The tanh GELU written out, its tanh's argument also added to the result: the
    group no longer ends in the GELU's steps (not the GELU's vector code)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.fc = nn.Linear(cin, cout)

    def forward(self, x: Any) -> Any:
        y = self.fc(x)
        inner = (y + y * y * y * 0.044715) * math.sqrt(2.0 / math.pi)
        return y * 0.5 * (am.tanh(inner) + 1.0) + inner


class Bottleneck(nn.Module):
    """conv-bn-relu, then conv1x1-bn added to a downsampling branch's conv1x1-bn of the
    input, relu (a ResNet bottleneck's first block): each product's chain in a group of its
    own, the later one's also adding the other's result and the relu."""

    def __init__(self, cin: int, mid: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.a = ConvBnRelu(cin, mid, 3, stride=stride)
        self.conv = nn.Conv2d(mid, cout, 1, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.down = nn.Conv2d(cin, cout, 1, stride=stride, bias=False)
        self.dbn = nn.BatchNorm2d(cout)

    def forward(self, x: Any) -> Any:
        return F.relu(self.bn(self.conv(self.a(x))) + self.dbn(self.down(x)))


class JoinScaled(nn.Module):
    """A convolution plus twice the input, then a second convolution added, relu: the
    first chain (with the doubling, which only it reads) leaves the later product's
    group."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.a = nn.Conv2d(c, c, 1, bias=False)
        self.b = nn.Conv2d(c, c, 3, padding=1, bias=False)

    def forward(self, x: Any) -> Any:
        return F.relu((self.a(x) + x * 2.0) + self.b(x))


class TwoLinears(nn.Module):
    """Two Linears of one input added, relu: the bias adds of two products."""

    def __init__(self, d: int, n: int) -> None:
        super().__init__()
        self.f, self.g = nn.Linear(d, n), nn.Linear(d, n)

    def forward(self, x: Any) -> Any:
        return F.relu(self.f(x) + self.g(x))


class SeqResidual(nn.Module):
    """A Linear on (batch, seq, features) with its input added back (a transformer
    layer's output projection before its LayerNorm)."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.fc = nn.Linear(d, d)

    def forward(self, x: Any) -> Any:
        return self.fc(x) + x


# name: (module factory, input shape without batch, (fused groups, fused nodes)): BatchNorm
# in eval mode is 2 elementwise nodes (x * alpha + beta), ReLU 2 (le, where), ReLU6 4; a
# product given to a group counts as one more of its nodes.
CASES: dict[str, tuple[Any, tuple[int, ...], tuple[int, int]]] = {
    "conv3x3_bn_relu": (lambda: ConvBnRelu(8, 24, 3), (8, 19, 23), (1, 2 + 2 + 1)),
    "conv1x1_bn_relu": (lambda: ConvBnRelu(16, 40, 1), (16, 17, 17), (1, 5)),
    "strided_grouped": (lambda: ConvBnRelu(8, 12, 3, stride=2, groups=2), (8, 21, 20), (1, 5)),
    "depthwise_relu6": (lambda: ConvBnRelu(12, 12, 3, groups=12, act=nn.ReLU6()),
                        (12, 30, 33), (1, 2 + 4 + 1)),
    # planes large enough that the epilogue runs on several bands of rows of each
    "depthwise_bands": (lambda: ConvBnRelu(6, 6, 3, groups=6, act=nn.ReLU6()),
                        (6, 47, 61), (1, 2 + 4 + 1)),
    "depthwise_bands_s2": (lambda: ConvBnRelu(6, 6, 3, stride=2, groups=6, act=nn.ReLU6()),
                           (6, 90, 77), (1, 2 + 4 + 1)),
    # BatchNorm and clamp: rows (channels) of 1, 49, 128 + 41 and 2 * 128 elements, whole
    # vectors and partial ones
    **{f"pointwise_clip_{h}x{w}": (lambda: ConvBnRelu(16, 24, 1, act=Clip6()), (16, h, w),
                                   (1, 2 + 2 + 1))
       for h, w in ((1, 1), (7, 7), (13, 13), (16, 16))},
    # 1x1 over few channels on a large plane (the small-convolution kernel): BatchNorm and
    # clamp, ReLU or ReLU6 (le, where, ge, where) in its registers
    "pointwise_few_clip": (lambda: ConvBnRelu(16, 24, 1, act=Clip6()), (16, 56, 57),
                           (1, 2 + 2 + 1)),
    "pointwise_few_relu": (lambda: ConvBnRelu(32, 24, 1), (32, 57, 56), (1, 5)),
    "pointwise_few_relu6": (lambda: ConvBnRelu(8, 24, 1, act=nn.ReLU6()), (8, 60, 60),
                            (1, 2 + 4 + 1)),
    "depthwise_clip_s2": (lambda: ConvBnRelu(12, 12, 3, stride=2, groups=12, act=Clip6()),
                          (12, 33, 30), (1, 2 + 2 + 1)),
    # ReLU6 in files exported before (nested where) through each register epilogue, and
    # a nested where that is not a clamp (kept as it is)
    **{f"nested_relu6_{name}": (lambda c=c, o=o, k=k, st=st, g=g: ConvBnRelu(
        c, o, k, stride=st, groups=g, act=NestedClamp()), shape, (1, 2 + 4 + 1))
       for name, c, o, k, st, g, shape in (
           ("depthwise", 12, 12, 3, 1, 12, (12, 30, 33)),
           ("depthwise_7x7", 20, 20, 3, 1, 20, (20, 7, 7)),
           ("pointwise_few", 8, 24, 1, 1, 1, (8, 60, 60)),
           ("gemm", 16, 40, 1, 1, 1, (16, 17, 17)),
           ("direct", 16, 64, 3, 1, 1, (16, 9, 11)),
           ("stem_s2", 3, 32, 3, 2, 1, (3, 37, 40)))},
    "nested_not_a_clamp": (lambda: ConvBnRelu(12, 12, 3, groups=12,
                                              act=NestedClamp(0.5, 0.25)), (12, 30, 33),
                           (1, 2 + 4 + 1)),
    # small planes, each a few vectors over the flat plane, at strides 1 and 2
    "depthwise_relu6_7x7": (lambda: ConvBnRelu(20, 20, 3, groups=20, act=nn.ReLU6()),
                            (20, 7, 7), (1, 2 + 4 + 1)),
    "depthwise_clip_s2_13x14": (lambda: ConvBnRelu(20, 20, 3, stride=2, groups=20,
                                                   act=Clip6()), (20, 13, 14), (1, 2 + 2 + 1)),
    # an odd number of channels (planes go two at a time: the last one alone)
    "depthwise_relu6_7x7_odd": (lambda: ConvBnRelu(7, 7, 3, groups=7, act=nn.ReLU6()),
                                (7, 7, 7), (1, 2 + 4 + 1)),
    "depthwise_clip_s2_14x14_odd": (lambda: ConvBnRelu(5, 5, 3, stride=2, groups=5,
                                                       act=Clip6()), (5, 14, 14), (1, 2 + 2 + 1)),
    # small planes and rows of at most one vector with a NaN shift in one channel, with
    # BatchNorm alone, and with ReLU (le, where): the epilogue on the sums in registers
    # for each plane that takes it, over the stored plane for the others
    "depthwise_nan_shift_7x7": (lambda: DwNanShift(9), (9, 7, 7), (1, 4)),
    "depthwise_nan_shift_s2_13x14": (lambda: DwNanShift(9, 2), (9, 13, 14), (1, 4)),
    "depthwise_nan_shift_14x14": (lambda: DwNanShift(9), (9, 14, 14), (1, 4)),
    "depthwise_bn_7x7_odd": (lambda: ConvBnRelu(7, 7, 3, groups=7, act=nn.Identity()),
                             (7, 7, 7), (1, 2 + 1)),
    "depthwise_relu_7x7_odd": (lambda: ConvBnRelu(7, 7, 3, groups=7), (7, 7, 7),
                               (1, 2 + 2 + 1)),
    # rows of at most one vector (the epilogue in one pass over each plane), strides 1, 2
    "depthwise_relu6_14x14": (lambda: ConvBnRelu(20, 20, 3, groups=20, act=nn.ReLU6()),
                              (20, 14, 14), (1, 2 + 4 + 1)),
    "depthwise_clip_s2_27x29": (lambda: ConvBnRelu(20, 20, 3, stride=2, groups=20,
                                                   act=Clip6()), (20, 27, 29), (1, 2 + 2 + 1)),
    "projection_residual": (lambda: Projection(24), (24, 9, 11), (1, 2 + 3 + 1)),
    # 1x1 on small images (49 and 196 pixels: the last columns one by one), a residual;
    # 600 deep (two blocks of k) and 100 output channels (a short last panel)
    "projection_residual_7x7": (lambda: Projection(24), (24, 7, 7), (1, 2 + 3 + 1)),
    "pointwise_deep_14x14": (lambda: ConvBnRelu(600, 100, 1, act=nn.ReLU6()), (600, 14, 14),
                             (1, 2 + 4 + 1)),
    # LeakyReLU (gt, mul, where) in the registers of each kernel: the GEMM's tile, the
    # small-convolution kernel, the depthwise kernel, the 3x3 kernels (directly and by
    # rows), an image stem; a negative slope and one above 1
    **{f"{name}_leaky": (lambda make=make: make(nn.LeakyReLU(0.1)), shape, (1, 2 + 3 + 1))
       for name, make, shape in (
           ("pointwise_deep", lambda a: ConvBnRelu(300, 40, 1, act=a), (300, 9, 13)),
           ("pointwise_few", lambda a: ConvBnRelu(16, 24, 1, act=a), (16, 56, 57)),
           ("depthwise", lambda a: ConvBnRelu(12, 12, 3, groups=12, act=a), (12, 30, 33)),
           ("depthwise_7x7", lambda a: ConvBnRelu(20, 20, 3, groups=20, act=a), (20, 7, 7)),
           ("direct", lambda a: ConvBnRelu(16, 64, 3, act=a), (16, 9, 4)),
           ("rows", lambda a: ConvBnRelu(16, 64, 3, act=a), (16, 9, 11)),
           ("stem_s2", lambda a: ConvBnRelu(3, 32, 3, stride=2, act=a), (3, 37, 40)))},
    "pointwise_deep_leaky_steep": (lambda: ConvBnRelu(300, 40, 1, act=nn.LeakyReLU(-2.5)),
                                   (300, 9, 13), (1, 2 + 3 + 1)),
    "linear_leaky": (lambda: nn.Sequential(nn.Linear(37, 300), nn.LeakyReLU(0.2)), (37,),
                     (1, 1 + 3 + 1)),
    # bn, relu | bn, add, relu: two groups, each with its convolution
    "residual": (lambda: Residual(16), (16, 12, 12), (2, 5 + 6)),
    # 3x3 convolutions computed directly (AVX-512): BatchNorm and ReLU, ReLU6 and clamp in
    # the transpose's registers, a residual add and SiLU after it; 40, 64, 70 and 48 output
    # channels (partial blocks of 64), 64 input channels (past one GEMM depth block), stride
    # 2 on a 7x7 output (a batch of 3: in one band)
    "direct_bn_relu": (lambda: ConvBnRelu(12, 40, 3), (12, 19, 23), (1, 2 + 2 + 1)),
    "direct_relu6": (lambda: ConvBnRelu(16, 64, 3, act=nn.ReLU6()), (16, 9, 11),
                     (1, 2 + 4 + 1)),
    "direct_clip": (lambda: ConvBnRelu(16, 70, 3, act=Clip6()), (16, 8, 13), (1, 2 + 2 + 1)),
    "direct_s2_bn_relu": (lambda: ConvBnRelu(16, 40, 3, stride=2), (16, 13, 14),
                          (1, 2 + 2 + 1)),
    "direct_residual": (lambda: Residual(64), (64, 10, 9), (2, 5 + 6)),
    # 7x7 images: a batch of 3 computed as one band (each image's epilogue and residual)
    "direct_residual_7x7": (lambda: Residual(64), (64, 7, 7), (2, 5 + 6)),
    "direct_silu": (lambda: nn.Sequential(nn.Conv2d(16, 48, 3), nn.SiLU()), (16, 15, 14),
                    (1, 1 + 2 + 1)),
    # two products' chains joined by an add: one group per product (conv + bn | conv + bn,
    # add, relu), the first block's as well (conv + bn + relu); images of 99 pixels (a
    # partial sliver), 256 (whole ones), and 7x6 after stride 2
    **{f"bottleneck_{c}_{m}_{o}_{h}x{w}_s{s}": (lambda c=c, m=m, o=o, s=s: Bottleneck(c, m, o, s),
                                               (c, h, w), (3, 5 + 3 + 6))
       for c, m, o, h, w, s in ((16, 12, 40, 9, 11, 1), (24, 16, 64, 16, 16, 1),
                                (16, 8, 24, 13, 12, 2))},
    "two_linears_relu": (lambda: TwoLinears(37, 45), (37,), (2, 2 + 5)),
    "join_scaled": (lambda: JoinScaled(12), (12, 9, 10), (2, 3 + 4)),
    # bias add and relu, then a bias add alone: a one-node group made for the product
    "linear_relu": (lambda: nn.Sequential(nn.Linear(37, 300), nn.ReLU(), nn.Linear(300, 5)),
                    (37,), (2, 4 + 2)),
    # one-input steps (erf, sigmoid) run the nodes' row loops on the vector code's blocks
    "linear_gelu": (lambda: nn.Sequential(nn.Linear(37, 300), nn.GELU()), (37,), (1, 1 + 5 + 1)),
    "conv_silu": (lambda: nn.Sequential(nn.Conv2d(6, 20, 3), nn.SiLU()), (6, 20, 21),
                  (1, 1 + 2 + 1)),
    # a Linear on (batch, seq, features): one product of batch * seq rows, its bias and
    # GELU (erf or tanh form) or residual add on each block of them
    "seq_linear_gelu": (lambda: nn.Sequential(nn.Linear(37, 300), nn.GELU()), (7, 37),
                        (1, 7)),
    "seq1_linear_gelu_tanh": (lambda: nn.Sequential(nn.Linear(37, 45),
                                                    nn.GELU(approximate="tanh")), (1, 37),
                              (1, 1 + 9 + 1)),
    # rows of 700: blocks of 256, then a partial vector; every step (tanh too) in the
    # epilogue's vector code
    "seq_linear_gelu_tanh_wide": (lambda: nn.Sequential(nn.Linear(37, 700),
                                                        nn.GELU(approximate="tanh")), (9, 37),
                                  (1, 1 + 9 + 1)),
    # the GELU's own vector code after the product (AVX-512): no step before it, two
    # steps before it; rows of 1, 17, 16 + 3 and 64 + 1 elements
    "seq_linear_nobias_gelu_tanh": (lambda: nn.Sequential(nn.Linear(37, 17, bias=False),
                                                          nn.GELU(approximate="tanh")),
                                    (13, 37), (1, 9 + 1)),
    **{f"seq_shifted_gelu_tanh_{n}": (lambda n=n: ShiftedGelu(29, n), (11, 29), (1, 2 + 9 + 1))
       for n in (1, 19, 65)},
    "seq_gelu_inner_reused": (lambda: GeluInnerReused(29, 40), (6, 29), (1, 1 + 10 + 1)),
    "seq_residual": (lambda: SeqResidual(33), (5, 33), (1, 3)),
    # 12-row panels of the input read in place, a bias along the columns (an LSTM's input
    # projection) and ReLU in the tile's registers; the rows past them packed; 45 columns
    # (a partial vector); 600 deep: two blocks of k, the first one's sums added back
    "seq_rows_linear_bias": (lambda: nn.Linear(600, 45), (29, 600), (1, 2)),
    "seq_rows_linear_relu": (lambda: nn.Sequential(nn.Linear(37, 300), nn.ReLU()), (13, 37),
                             (1, 4)),
    "rank4_linear_relu": (lambda: nn.Sequential(nn.Linear(19, 21), nn.ReLU()), (3, 2, 19),
                          (1, 4)),
    # few taps (the small-convolution kernel): bias and ReLU in its registers; BatchNorm's
    # multiply on the finished block; a 3x1 kernel reading the image in place
    "small_conv_bias_relu": (lambda: nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU()),
                             (1, 28, 28), (1, 4)),
    "small_conv_bias_relu_odd": (lambda: nn.Sequential(nn.Conv2d(3, 13, 3, padding=1),
                                                       nn.ReLU()), (3, 11, 17), (1, 4)),
    "small_conv_bn_relu": (lambda: ConvBnRelu(8, 12, 3), (8, 14, 14), (1, 5)),
    "small_conv_3x1_relu": (lambda: nn.Sequential(nn.Conv2d(8, 16, (3, 1)), nn.ReLU()),
                            (8, 9, 12), (1, 4)),
    "small_conv_nan_shift": (NanShift, (2, 10, 13), (1, 4)),
    # stride 2 over 3 channels (an image stem): BatchNorm and clamp, or ReLU6, in its
    # registers; 104 output channels: on each finished band; 7x7 stems (ResNet-50's
    # BatchNorm and ReLU, SqueezeNet's bias and ReLU, 96 channels)
    "stem_s2_bn_clip": (lambda: ConvBnRelu(3, 32, 3, stride=2, act=Clip6()), (3, 37, 40),
                        (1, 2 + 2 + 1)),
    "stem_s2_bn_relu6": (lambda: ConvBnRelu(3, 32, 3, stride=2, act=nn.ReLU6()), (3, 37, 40),
                         (1, 2 + 4 + 1)),
    "stem_s2_bn_relu6_104": (lambda: ConvBnRelu(3, 104, 3, stride=2, act=nn.ReLU6()),
                             (3, 21, 34), (1, 2 + 4 + 1)),
    "stem7_s2_bn_relu": (lambda: ConvBnRelu(3, 64, 7, stride=2), (3, 45, 52), (1, 5)),
    "stem7_s2_bias_relu_96": (lambda: nn.Sequential(nn.Conv2d(3, 96, 7, stride=2), nn.ReLU()),
                              (3, 43, 47), (1, 4)),
    "stem7_s2_bn_relu6_100": (lambda: ConvBnRelu(3, 100, 7, stride=2, act=nn.ReLU6()),
                              (3, 37, 41), (1, 2 + 4 + 1)),
    # runs unfused-but-in-place: the bias along the width does not fit the block view
    "width_bias": (WidthBias, (3, 9, 9), (1, 5)),
    # read by relu and by sum: no epilogue (le, where and the final add fuse alone)
    "shared_product": (Shared, (3, 8, 8), (1, 3)),
}


def _export(name: str, tmp_path: Path, dtype: Any) -> tuple[nn.Module, Path]:
    make, shape, _ = CASES[name]
    am.manual_seed(3)
    model = make()
    randomise_norm_state(model, 5)
    if dtype == am.float64:
        model = model.double()
    model.eval()
    path = tmp_path / f"{name}.amber"
    am.export(model, am.spec("batch", *shape, dtype=dtype)).save(str(path))
    return model, path


def _inputs(name: str, batch: int, dtype: Any) -> np.ndarray:
    shape = CASES[name][1]
    x = np.random.default_rng(batch).standard_normal((batch, *shape)) * 2
    x.flat[:3] = [np.nan, np.inf, 0.0]  # NaN and inf go through max/where like the nodes
    x = x.astype(np.float64 if dtype == am.float64 else np.float32)
    # NaNs of other payloads and signs in the first image (the others stay finite: a NaN
    # in a row of a product's input makes its whole output row NaN), where a product's
    # NaN meets a residual's: the fused steps must give NaN wherever the nodes do
    bits = x.view(np.uint64 if x.dtype == np.float64 else np.uint32).reshape(-1)
    quiet = 0x7FF8000000000000 if x.dtype == np.float64 else 0x7FC00000
    sign, span = 1 << (8 * x.itemsize - 1), x.size // batch
    for k, at in enumerate(range(span // 7, span, span // 7 or 1)):
        bits[at] = (quiet | (k + 1) << 4) ^ (sign if k % 2 else 0)
    return x


def _same_bits(got: np.ndarray, want: np.ndarray) -> bool:
    """Every element the same bits, but a NaN may carry another sign or payload (all
    NaNs are equivalent, docs/opset.md: which of two NaNs meeting in a step comes out
    depends on the order the compiled code gives that step's operands)."""
    nan = np.isnan(want)
    return bool(np.array_equal(np.isnan(got), nan) and
                got[~nan].tobytes() == want[~nan].tobytes())


def _run(path: Path, x: np.ndarray, fuse: bool, threads: int) -> tuple[np.ndarray, Any]:
    model = N.NativeModel(path, fuse=fuse, threads=threads)
    session = model.session()
    out = session.run("forward", [x])[0]
    return out, session.stats()


@pytest.mark.parametrize("name", sorted(CASES))
def test_epilogue_gives_the_unfused_bits(lib: N.NativeLibrary, name: str,
                                         tmp_path: Path) -> None:
    model, path = _export(name, tmp_path, am.float32)
    for batch in (1, 3):
        x = _inputs(name, batch, am.float32)
        want, plain = _run(path, x, fuse=False, threads=1)
        assert plain.fused_groups == 0
        with am.no_grad(), np.errstate(invalid="ignore"):  # inf * 0 in SiLU
            eager = model(am.tensor(x)).numpy()
        assert np.array_equal(want, eager, equal_nan=True)
        assert batch == 1 or np.isnan(want[1:]).mean() < 0.5  # (the NaN inputs: image 0)
        for threads in (1, 2):
            got, stats = _run(path, x, fuse=True, threads=threads)
            assert _same_bits(got, want), (name, batch, threads)


@pytest.mark.parametrize("name", ["conv3x3_bn_relu", "depthwise_relu6", "depthwise_bands",
                                  "bottleneck_16_12_40_9x11_s1", "linear_relu",
                                  "seq_linear_gelu", "seq1_linear_gelu_tanh",
                                  "seq_residual", "seq_linear_nobias_gelu_tanh",
                                  "seq_shifted_gelu_tanh_19", "seq_gelu_inner_reused"])
def test_epilogue_float64(lib: N.NativeLibrary, name: str, tmp_path: Path) -> None:
    _, path = _export(name, tmp_path, am.float64)
    x = _inputs(name, 2, am.float64)
    want, _ = _run(path, x, fuse=False, threads=1)
    got, _ = _run(path, x, fuse=True, threads=2)
    assert _same_bits(got, want)


def test_products_join_their_chains(lib: N.NativeLibrary, tmp_path: Path) -> None:
    for name, (_, _, want) in CASES.items():
        _, path = _export(name, tmp_path, am.float32)
        _, stats = _run(path, _inputs(name, 1, am.float32), fuse=True, threads=1)
        assert (stats.fused_groups, stats.fused_nodes) == want, name


def _gelu(x: np.ndarray, tanh: bool) -> np.ndarray:
    if tanh:
        return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))
    return 0.5 * x * (1 + np.vectorize(math.erf)(x / np.sqrt(2)))


@pytest.mark.parametrize("dtype", [am.float32, am.float64])
@pytest.mark.parametrize("name,tanh", [("seq_linear_gelu", False),
                                       ("seq1_linear_gelu_tanh", True)])
def test_sequence_linear_gelu_against_numpy(lib: N.NativeLibrary, tmp_path: Path, dtype: Any,
                                            name: str, tanh: bool) -> None:
    """The fused (batch, seq, features) Linear + GELU against NumPy in float64."""
    model, path = _export(name, tmp_path, dtype)
    fc = model[0]
    w, b = (t.detach().numpy().astype(np.float64) for t in (fc.weight, fc.bias))
    x = np.random.default_rng(7).standard_normal((3, *CASES[name][1]))
    x = x.astype(np.float64 if dtype == am.float64 else np.float32)
    want = _gelu(x.astype(np.float64) @ w.T + b, tanh)
    got, stats = _run(path, x, fuse=True, threads=2)
    assert stats.fused_groups == 1
    tol = 1e-12 if dtype == am.float64 else 2e-5
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)
