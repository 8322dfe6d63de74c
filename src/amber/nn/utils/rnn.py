"""``amber.nn.utils.rnn``: ``pad_sequence`` and friends, as ``torch.nn.utils.rnn``.

amber's recurrent layers take padded tensors, not ``PackedSequence``: the packing
functions raise :class:`amber.AmberError` explaining how to pad and mask instead, so a
ported program stops at the line that needs changing."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ... import functional as _F
from ...errors import AmberError, ShapeError
from ...tensor import Tensor
from ..functional import pad

_PACKED = ("amber's recurrent layers do not take PackedSequence: pad the sequences to one "
           "length with pad_sequence (batch them as one tensor), run the layer on the padded "
           "batch, and mask the padded steps or read each sequence's output at its length "
           "(out[length - 1, i])")


def pad_sequence(sequences: Sequence[Tensor], batch_first: bool = False,
                 padding_value: float = 0.0, padding_side: str = "right") -> Tensor:
    """Stack tensors of shape (L_i, *) into (L_max, B, *) (or (B, L_max, *) with
    ``batch_first``), padding each with ``padding_value`` on ``padding_side``."""
    seqs = [s if isinstance(s, Tensor) else _F._as_tensor(s) for s in sequences]
    if not seqs:
        raise ShapeError("pad_sequence: expects a non-empty sequence of tensors")
    if padding_side not in ("right", "left"):
        raise AmberError(f"pad_sequence: padding_side must be 'right' or 'left', got "
                         f"{padding_side!r}")
    trailing = tuple(seqs[0].shape[1:])
    for s in seqs:
        if s.ndim == 0 or tuple(s.shape[1:]) != trailing:
            raise ShapeError(f"pad_sequence: every tensor must be (L, *{trailing}), got "
                             f"{', '.join(str(tuple(x.shape)) for x in seqs)}")
    longest = max(int(s.shape[0]) for s in seqs)
    padded = []
    for s in seqs:
        extra = longest - int(s.shape[0])
        amounts = [0, 0] * len(trailing) + ([0, extra] if padding_side == "right" else [extra, 0])
        padded.append(pad(s, amounts, value=padding_value) if extra else s)
    return _F.stack(padded, 0 if batch_first else 1)


def pack_padded_sequence(input: Any, lengths: Any, batch_first: bool = False,
                         enforce_sorted: bool = True) -> Any:
    """Not supported: raises :class:`amber.AmberError` (see the module docstring)."""
    raise AmberError(f"pack_padded_sequence: {_PACKED}")


def pack_sequence(sequences: Any, enforce_sorted: bool = True) -> Any:
    """Not supported: raises :class:`amber.AmberError` (see the module docstring)."""
    raise AmberError(f"pack_sequence: {_PACKED}")


def pad_packed_sequence(sequence: Any, batch_first: bool = False, padding_value: float = 0.0,
                        total_length: int | None = None) -> Any:
    """Not supported: raises :class:`amber.AmberError` (see the module docstring)."""
    raise AmberError(f"pad_packed_sequence: {_PACKED}")
