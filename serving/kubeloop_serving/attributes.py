"""Sensitive attributes passed with an inference request, for the payload log only.

A client names the groups each row belongs to in the request's OIP ``parameters``::

    "parameters": {"attributes": {"sex": ["f", "m"], "age_band": ["<30", "30+"]}}

one value per row (the first dimension of the inputs; 1 for a model without a batch
dimension): a string, number, boolean or null. The values are written to the payload log as
``_attribute.{name}`` string columns (numbers and booleans as their JSON text) so that the
monitor can compute per-group performance and fairness; they never reach the model.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import orjson

from kubeloop.contracts.payload_log import ATTRIBUTE_NAME_PATTERN
from kubeloop_serving.errors import InvalidRequestError

ATTRIBUTES_PARAMETER = "attributes"
MAX_ATTRIBUTES = 32
_NAME = re.compile(ATTRIBUTE_NAME_PATTERN)
Attributes = Mapping[str, tuple[str | None, ...]]


def parse_attributes(parameters: Mapping[str, object], rows: int) -> Attributes:
    """``parameters.attributes`` as name -> one string (or None) per row; 400 naming what is wrong."""
    raw = parameters.get(ATTRIBUTES_PARAMETER)
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise InvalidRequestError(
            "parameters.attributes must be an object mapping attribute names to lists of per-row values"
        )
    if len(raw) > MAX_ATTRIBUTES:
        raise InvalidRequestError(
            f"parameters.attributes has {len(raw)} attributes; at most {MAX_ATTRIBUTES}"
        )
    parsed: dict[str, tuple[str | None, ...]] = {}
    for name, values in raw.items():
        where = f"parameters.attributes.{name}"
        if not _NAME.match(name):
            raise InvalidRequestError(
                f"attribute name {name!r} must be 1-63 letters, digits, '_', '.' or '-' "
                "(not starting with '.' or '-')"
            )
        if not isinstance(values, list):
            raise InvalidRequestError(f"{where} must be a list with one value per row ({rows} rows)")
        if len(values) != rows:
            raise InvalidRequestError(f"{where} has {len(values)} values but the request has {rows} rows")
        parsed[name] = tuple(_text(value, where, index) for index, value in enumerate(values))
    return parsed


def _text(value: object, where: str, index: int) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        return orjson.dumps(value).decode()
    raise InvalidRequestError(f"{where}[{index}] must be a string, number, boolean or null")
