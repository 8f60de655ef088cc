"""Open Inference Protocol datatypes, their NumPy dtypes and the onnxruntime type names."""

from __future__ import annotations

from typing import Any, Final

import numpy as np

BYTES: Final = "BYTES"

#: Named tensors: model inputs or outputs.
Tensors = dict[str, np.ndarray[Any, Any]]

#: OIP datatype -> little-endian NumPy dtype (BYTES is a Python-object array of str).
NUMPY_DTYPES: Final[dict[str, np.dtype[np.generic]]] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype("<u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
    BYTES: np.dtype(object),
}

#: OIP datatypes of floating-point tensors.
FLOAT_DATATYPES: Final = frozenset(name for name, dtype in NUMPY_DTYPES.items() if dtype.kind == "f")

#: NumPy dtype -> OIP datatype (object arrays hold BYTES).
DATATYPES: Final[dict[np.dtype[np.generic], str]] = {dtype: name for name, dtype in NUMPY_DTYPES.items()}

#: onnxruntime's tensor type names -> OIP datatype.
ORT_TYPES: Final[dict[str, str]] = {
    "tensor(bool)": "BOOL",
    "tensor(uint8)": "UINT8",
    "tensor(uint16)": "UINT16",
    "tensor(uint32)": "UINT32",
    "tensor(uint64)": "UINT64",
    "tensor(int8)": "INT8",
    "tensor(int16)": "INT16",
    "tensor(int32)": "INT32",
    "tensor(int64)": "INT64",
    "tensor(float16)": "FP16",
    "tensor(float)": "FP32",
    "tensor(double)": "FP64",
    "tensor(string)": BYTES,
}

#: Which NumPy kinds a JSON-decoded array may have for each datatype family.
_JSON_KINDS: Final[dict[str, str]] = {"b": "b", "u": "iu", "i": "iu", "f": "iuf"}


def oip_datatype_of_ort_type(ort_type: str) -> str | None:
    """The OIP datatype of an onnxruntime type name, or None when OIP cannot carry it."""
    return ORT_TYPES.get(ort_type)


def oip_datatype_of_dtype(dtype: np.dtype[np.generic]) -> str:
    """The OIP datatype of a NumPy dtype (strings of any kind are BYTES)."""
    datatype = DATATYPES.get(dtype)
    if datatype is not None:
        return datatype
    if dtype.kind in "OUS":
        return BYTES
    datatype = DATATYPES.get(dtype.newbyteorder("<"))
    if datatype is None:
        raise ValueError(f"no Open Inference Protocol datatype for NumPy dtype {dtype}")
    return datatype


def accepted_json_kinds(datatype: str) -> str:
    """NumPy kinds acceptable for JSON data of ``datatype`` (integers are valid floats, not vice versa)."""
    if datatype == BYTES:
        return "US"
    return _JSON_KINDS[NUMPY_DTYPES[datatype].kind]
