"""A large request's JSON through simdjson, its float tensors copied straight into NumPy.

orjson makes a Python float per element of ``data`` (a 3x64x64 image is 12,288 of them) that the
decoder then copies into an array; simdjson parses the body into its tape and copies a flat array
of numbers into a buffer without any Python object per element (``Array.as_buffer``). Everything
else in the request is small and converted to Python objects as orjson would make them.

This path only ever *accepts* what orjson accepts, as orjson would read it; for anything else it
answers None and the caller parses with orjson, whose errors the client is told:
- every simdjson error (big integers, numbers beyond float64, bad UTF-8, depth, trailing content);
- a byte order mark (simdjson skips it, orjson refuses it);
- duplicate keys in any object (orjson keeps the last; refusing the fast path is simpler than
  following it exactly);
- any ``[`` in the body that is not an array this walk converted: a nested or ragged ``data``
  (``as_buffer`` would flatten it) or a bracket inside a string;
- more nesting than requests have.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import simdjson

from kubeloop_serving.datatypes import FLOAT_DATATYPES

_BOM = b"\xef\xbb\xbf"
_MAX_DEPTH = 32  # a request is 4 levels deep (request, inputs, input, shape); parameters add a few
_local = threading.local()  # a Parser is not thread-safe; large bodies are decoded in worker threads
# A Parser keeps the buffers of the largest document it has parsed: a thread keeps one for bodies
# up to this size, and a body above it gets a Parser of its own, freed with it.
_KEEP_PARSER_BYTES = 1 << 20


class _FallbackError(Exception):
    """The body is left to orjson."""


def load(body: bytes) -> dict[str, Any] | None:
    """The request object, with each FP input's flat float ``data`` as a float64 array; None when
    orjson must decide (see the module's docstring)."""
    if body.startswith(_BOM):
        return None
    parser = getattr(_local, "parser", None) if len(body) <= _KEEP_PARSER_BYTES else simdjson.Parser()
    if parser is None:
        parser = _local.parser = simdjson.Parser()
    walk = _Walk()
    try:
        root = parser.parse(body)
        document = walk.request(root) if isinstance(root, simdjson.Object) else None
    except (_FallbackError, ValueError, TypeError, RuntimeError, UnicodeDecodeError):
        return None
    finally:
        root = None  # the parser refuses to parse again while a proxy into its tape is alive
    if document is None or _brackets(body) != walk.arrays:
        return None
    return document


def _is_float(value: object) -> bool:  # the stub types every item of an Array as an Array
    return type(value) is float


def _brackets(body: bytes) -> int:
    # replace() finds them with memchr: ~10x faster than count() for a body of 100+ KB
    return len(body) - len(body.replace(b"[", b""))


class _Walk:
    """Converts simdjson proxies to Python objects, counting the arrays it meets."""

    def __init__(self) -> None:
        self.arrays = 0

    def request(self, root: simdjson.Object) -> dict[str, Any]:
        document = self.mapping(root, 1, skip="inputs")
        if "inputs" in root:
            inputs = root["inputs"]
            if isinstance(inputs, simdjson.Array):
                self.arrays += 1
                document["inputs"] = [
                    self.input(item) if isinstance(item, simdjson.Object) else self.plain(item, 2)
                    for item in inputs
                ]
            else:
                document["inputs"] = self.plain(inputs, 1)
        return document

    def input(self, tensor: simdjson.Object) -> dict[str, Any]:
        converted = self.mapping(tensor, 3, skip="data")
        if "data" not in tensor:
            return converted
        data = tensor["data"]
        if (
            isinstance(data, simdjson.Array)
            and converted.get("datatype") in FLOAT_DATATYPES
            and len(data)
            and _is_float(data[0])
        ):
            try:
                values = np.frombuffer(data.as_buffer(of_type="d"), np.float64)
            except TypeError:  # not all numbers: a list, as orjson would give it
                converted["data"] = self.plain(data, 3)
            else:
                self.arrays += 1  # nested arrays inside are not counted, so the caller falls back
                converted["data"] = values
        else:
            converted["data"] = self.plain(data, 3)
        return converted

    def mapping(self, value: simdjson.Object, depth: int, skip: str = "") -> dict[str, Any]:
        keys = list(value)  # every key, a repeated one too (items() and values() would convert deeply)
        if len(set(keys)) != len(keys):
            raise _FallbackError
        return {key: self.plain(value[key], depth) for key in keys if key != skip}

    def plain(self, value: object, depth: int) -> Any:
        if depth > _MAX_DEPTH:
            raise _FallbackError
        if isinstance(value, simdjson.Object):
            return self.mapping(value, depth + 1)
        if isinstance(value, simdjson.Array):
            self.arrays += 1
            return [self.plain(item, depth + 1) for item in value]
        return value
