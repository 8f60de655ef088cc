"""Bounds a request meets before any of its tensors is allocated.

A shape is a promise about memory: ``[1000000000]`` costs nothing to send and gigabytes to honour.
Every input's declared element count is checked against the bytes that could hold it (the JSON
header for ``data``, the input's binary slice for the binary extension; each element takes at
least one JSON byte, its item size, or a 4-byte length prefix for BYTES), and the memory its
decoded array would take is charged to a per-request budget (``MAX_DECODED_FACTOR`` x
``MAX_REQUEST_BYTES``) before allocating. Absurd shapes (2**62 elements, dimensions that
overflow NumPy) are a 400, never a 500.
"""

from __future__ import annotations

import math
from typing import Final

from kubeloop_serving.errors import InvalidRequestError, PayloadTooLargeError

#: Most dimensions an input may have (NumPy allows 64; no model needs more than a handful).
MAX_RANK: Final = 32
#: Largest product of the non-zero dimensions of an empty tensor (NumPy needs it to fit an index).
MAX_EMPTY_EXTENT: Final = 2**31 - 1
#: Memory a decoded BYTES element takes beyond its characters: a pointer and a ``str`` header.
STRING_OVERHEAD: Final = 8 + 49
#: Bytes one element takes at least in the binary extension, per datatype family (BYTES: its prefix).
MIN_BINARY_BYTES_PER_STRING: Final = 4
#: Bodies larger than this are decoded in a worker thread, so the event loop keeps serving.
OFFLOAD_DECODE_BYTES: Final = 256 * 1024


def declared_count(shape: tuple[int, ...], room: int, min_bytes: int, name: str) -> int:
    """The element count ``shape`` declares, if ``room`` bytes (at ``min_bytes`` each) can hold it."""
    if len(shape) > MAX_RANK:
        raise InvalidRequestError(f"input {name!r} has {len(shape)} dimensions; at most {MAX_RANK}")
    count = math.prod(shape)
    if count == 0:
        extent = math.prod(dim for dim in shape if dim)
        if extent > MAX_EMPTY_EXTENT:
            raise InvalidRequestError(f"shape {_short(shape)} of input {name!r} is too large")
        return 0
    capacity = room // min_bytes
    if count > capacity:
        raise InvalidRequestError(
            f"shape {_short(shape)} of input {name!r} declares {count} elements; "
            f"its {room} bytes of data can hold at most {capacity}"
        )
    return count


def _short(shape: tuple[int, ...]) -> str:
    text = str(list(shape))
    return text if len(text) <= 80 else text[:77] + "..."


class DecodeBudget:
    """Memory the decoded inputs of one request may take; charged before each allocation."""

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.used = 0

    def charge(self, nbytes: int, name: str) -> None:
        """Account for ``nbytes`` more; 413 when the request would exceed its bound."""
        self.used += nbytes
        if self.limit is not None and self.used > self.limit:
            raise PayloadTooLargeError(
                f"decoding input {name!r} would take {self.used} bytes of memory; "
                f"a request may take at most {self.limit}"
            )
