"""The core API's rules for object names, label keys and label values, as CRD rules and as model checks.

Each rule exists twice from one definition: a regular expression (plus lengths) used in the CRD
(``pattern`` or CEL) and in the models (pydantic validators), so the API server and the operator's
models refuse the same things, with messages that name the field.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Final

from pydantic import AfterValidator, Field, JsonValue

#: DNS-1035 label (a Service name): lower-case alphanumerics and '-', starting with a letter.
DNS1035_LABEL: Final = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
MAX_NAME: Final = 63
#: A label value: empty, or alphanumerics with '-', '_', '.' inside, at most 63 characters.
LABEL_VALUE: Final = r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$"
#: A label key: an optional DNS-subdomain prefix and '/', then a name like a label value (not empty).
LABEL_KEY: Final = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9]$"
)
MAX_PREFIX: Final = 253
MAX_LABELS: Final = 64

#: CEL at the root of every kind: the object's own name must work as a Service name and label value
#: (the operator names Services, Jobs and label values after it and adds suffixes, hashed when long).
NAME_RULE: Final[dict[str, str]] = {
    "rule": f"size(self.metadata.name) <= {MAX_NAME} && self.metadata.name.matches(r'{DNS1035_LABEL}')",
    "message": f"metadata.name must be a DNS-1035 label of at most {MAX_NAME} characters (lower-case "
    "letters, digits and '-', starting with a letter, ending with a letter or digit): the operator "
    "names Services and labels after it",
}


def validations(rules: list[dict[str, str]]) -> dict[str, JsonValue]:
    """``x-kubernetes-validations`` for a schema: CEL rules with their messages."""
    listed: list[JsonValue] = [{"rule": r["rule"], "message": r["message"]} for r in rules]
    return {"x-kubernetes-validations": listed}


def label_key_problem(key: str) -> str | None:
    """Why ``key`` is not a valid label key (None: it is)."""
    if not re.match(LABEL_KEY, key):
        rule = "optional DNS prefix and '/', then at most 63 of [-A-Za-z0-9_.]"
        return f"{key!r} is not a valid label key ({rule})"
    if "/" in key and len(key.split("/", maxsplit=1)[0]) > MAX_PREFIX:
        return f"the prefix of label key {key[:40]!r}... exceeds {MAX_PREFIX} characters"
    return None


def label_value_problem(value: str) -> str | None:
    """Why ``value`` is not a valid label value (None: it is)."""
    if not re.match(LABEL_VALUE, value):
        return (
            f"{value!r} is not a valid label value (at most 63 of [-A-Za-z0-9_.], alphanumeric at both ends)"
        )
    return None


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot be the name of a kubeloop object (None: it can)."""
    if len(name) > MAX_NAME or not re.match(DNS1035_LABEL, name):
        return str(NAME_RULE["message"]).replace("metadata.name", f"metadata.name {name!r}")
    return None


def _check_labels(labels: dict[str, str]) -> dict[str, str]:
    for key, value in labels.items():
        problem = label_key_problem(key) or label_value_problem(value)
        if problem:
            raise ValueError(problem)
    return labels


LABEL_MAP_RULES: Final[list[dict[str, str]]] = [
    {
        "rule": f"self.all(k, k.matches(r'{LABEL_KEY}')"
        f" && (!k.contains('/') || size(k.split('/')[0]) <= {MAX_PREFIX}))",
        "message": "keys must be valid label keys (optional DNS prefix and '/', then at most 63 of "
        "[-A-Za-z0-9_.], alphanumeric at both ends)",
    },
    {
        "rule": f"self.all(k, self[k].matches(r'{LABEL_VALUE}'))",
        "message": "values must be valid label values "
        "(at most 63 of [-A-Za-z0-9_.], alphanumeric at both ends)",
    },
]


LABEL_VALUE_SCHEMA: Final[dict[str, JsonValue]] = {"type": "string", "maxLength": MAX_NAME}


def label_map_field(description: str) -> Any:
    """A ``dict[str, str]`` field whose keys and values are label keys and values (node selectors, labels)."""
    return Field(
        default_factory=dict,
        description=description,
        max_length=MAX_LABELS,
        json_schema_extra={
            **validations(LABEL_MAP_RULES),
            "additionalProperties": LABEL_VALUE_SCHEMA,
        },
    )


LabelMap = Annotated[dict[str, str], AfterValidator(_check_labels)]
