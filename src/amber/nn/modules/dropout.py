"""``Dropout`` and ``Embedding``."""

from __future__ import annotations

from typing import Any

from ...creation import Generator, empty
from ...errors import AmberError, OutOfRangeError
from ...ops.registry import no_grad
from .. import functional as F
from .. import init
from ..parameter import Parameter
from .module import Module


class Dropout(Module):
    """In training, zero elements with probability ``p`` and scale the rest by
    ``1 / (1 - p)``; the identity in eval mode."""

    def __init__(self, p: float = 0.5, inplace: bool = False,
                 generator: Generator | None = None) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise AmberError(f"Dropout: probability has to be between 0 and 1, but got {p}")
        self.p = p
        self.inplace = inplace
        self.generator = generator

    def forward(self, input: Any) -> Any:
        return F.dropout(input, self.p, self.training, generator=self.generator)

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"


class Embedding(Module):
    """A lookup table: integer indices select rows of ``weight`` (num_embeddings,
    embedding_dim), initialised N(0, 1) with the ``padding_idx`` row zeroed."""

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int | None = None,
                 max_norm: float | None = None, norm_type: float = 2.0,
                 scale_grad_by_freq: bool = False, sparse: bool = False, _weight: Any = None,
                 _freeze: bool = False, device: Any = None, dtype: Any = None) -> None:
        super().__init__()
        if max_norm is not None or scale_grad_by_freq or sparse:
            raise AmberError("Embedding: max_norm, scale_grad_by_freq and sparse are not "
                             "supported by amber")
        if padding_idx is not None:
            if not -num_embeddings <= padding_idx < num_embeddings:
                raise OutOfRangeError(f"Embedding: padding_idx {padding_idx} must be within "
                                      f"num_embeddings ({num_embeddings})")
            padding_idx = padding_idx % num_embeddings
        self.num_embeddings = num_embeddings
        self.embedding_dim = embedding_dim
        self.padding_idx = padding_idx
        if _weight is None:
            self.weight = Parameter(empty(num_embeddings, embedding_dim, dtype=dtype),
                                    requires_grad=not _freeze)
            self.reset_parameters()
        else:
            self.weight = Parameter(_weight, requires_grad=not _freeze)

    def reset_parameters(self) -> None:
        """Re-draw the weight from N(0, 1), zeroing the padding row."""
        init.normal_(self.weight)
        if self.padding_idx is not None:
            with no_grad():
                w = self.weight.detach().numpy().copy()
                w[self.padding_idx] = 0
                self.weight._assign(w)

    @classmethod
    def from_pretrained(cls, embeddings: Any, freeze: bool = True,
                        padding_idx: int | None = None) -> Embedding:
        """An Embedding holding ``embeddings`` (2-D), frozen unless ``freeze=False``."""
        rows, dim = embeddings.shape
        return cls(rows, dim, padding_idx=padding_idx, _weight=embeddings, _freeze=freeze)

    def forward(self, input: Any) -> Any:
        return F.embedding(input, self.weight, self.padding_idx)

    def extra_repr(self) -> str:
        s = f"{self.num_embeddings}, {self.embedding_dim}"
        return s + (f", padding_idx={self.padding_idx}" if self.padding_idx is not None else "")


class Dropout1d(Dropout):
    """In training, zero whole channels of (N, C, L) input with probability ``p``."""

    def forward(self, input: Any) -> Any:
        return F.dropout1d(input, self.p, self.training, generator=self.generator)


class Dropout2d(Dropout):
    """In training, zero whole channels of (N, C, H, W) input with probability ``p``."""

    def forward(self, input: Any) -> Any:
        return F.dropout2d(input, self.p, self.training, generator=self.generator)
