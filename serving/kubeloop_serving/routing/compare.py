"""Decode an OIP inference answer and compare it row by row with another one."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson

from kubeloop_serving.datatypes import Tensors
from kubeloop_serving.request import decode_tensors
from kubeloop_serving.request_bounds import DecodeBudget

BoolArray = np.ndarray[Any, np.dtype[np.bool_]]


def decode_answer(
    body: bytes, header_length: int | None, max_decoded_bytes: int
) -> tuple[str | None, Tensors]:
    """(model_version, outputs) of a JSON or binary-extension answer; ValueError when it is not one."""
    header = body if header_length is None else body[:header_length]
    binary = memoryview(b"" if header_length is None else body)[header_length or 0 :]
    document = orjson.loads(header)
    if not isinstance(document, dict):
        raise ValueError("the answer is not a JSON object")
    outputs, _ = decode_tensors(document.get("outputs"), binary, len(header), DecodeBudget(max_decoded_bytes))
    version = document.get("model_version")
    return (version if isinstance(version, str) else None), outputs


def rows_agree(stable: Tensors, other: Tensors) -> BoolArray:
    """Per row of stable's first output, whether the predictions both answers have agree on it:
    exactly for integers, bools and strings, ``numpy.isclose`` (allclose's test) for floats.
    When some outputs are not floats (a classifier's label beside its scores), only those are
    compared: two classifiers agree when they predict the same class, whatever their scores.
    A tensor whose shape differs disagrees on every row."""
    names = [name for name in other if name in stable]
    if not names:
        raise ValueError("the answers have no output in common")
    labels = [name for name in names if stable[name].dtype.kind != "f"]
    names = labels or names
    first = stable[names[0]]
    rows = first.shape[0] if first.ndim else 1
    agree = np.ones(rows, np.bool_)
    for name in names:
        mine, theirs = stable[name], other[name]
        if mine.shape != theirs.shape:
            return np.zeros(rows, np.bool_)
        same = _same(mine, theirs)
        if mine.ndim and mine.shape[0] == rows:
            agree &= same.reshape(rows, -1).all(axis=1)
        else:  # not per row: the whole tensor decides for every row
            agree &= bool(same.all())
    return agree


def _same(mine: np.ndarray[Any, Any], theirs: np.ndarray[Any, Any]) -> BoolArray:
    if mine.dtype.kind == "f" or theirs.dtype.kind == "f":
        try:
            return np.asarray(np.isclose(mine, theirs, equal_nan=True), np.bool_)
        except TypeError:  # a float answered where a string was expected
            return np.zeros(mine.shape, np.bool_)
    if mine.dtype.kind in "OSU" or theirs.dtype.kind in "OSU":
        return np.asarray(_texts(mine) == _texts(theirs), np.bool_)
    return np.asarray(mine == theirs, np.bool_)


def _texts(array: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    flat = [
        item.decode("utf-8", "replace") if isinstance(item, bytes) else str(item)
        for item in array.reshape(-1)
    ]
    return np.array(flat, dtype=object).reshape(array.shape)
