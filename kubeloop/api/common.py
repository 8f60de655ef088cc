"""Types shared by the three kinds: resources, scheduling, conditions, references."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, field_validator, model_validator
from pydantic.alias_generators import to_camel

from kubeloop.api.labels import (
    LABEL_KEY,
    LABEL_VALUE,
    MAX_PREFIX,
    LabelMap,
    label_key_problem,
    label_map_field,
    validations,
)

GROUP = "kubeloop.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

QUANTITY_PATTERN = r"^[0-9]+(\.[0-9]+)?(m|k|Ki|M|Mi|G|Gi|T|Ti|P|Pi|E|Ei)?$"
Quantity = Annotated[
    Annotated[int, Field(ge=0, strict=True)] | Annotated[str, Field(pattern=QUANTITY_PATTERN, max_length=64)],
    WithJsonSchema(
        {
            "x-kubernetes-int-or-string": True,
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "pattern": QUANTITY_PATTERN,
            "x-kubernetes-validations": [
                {
                    "rule": "type(self) != int || self >= 0",
                    "message": "a quantity must not be negative",
                },
                {"rule": "type(self) != string || size(self) <= 64", "message": "a quantity is too long"},
            ],
        }
    ),
]
#: An extended resource name (a GPU): `domain/name`, not in the kubernetes.io namespace.
EXTENDED_RESOURCE_PATTERN = (
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/"
    r"([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9]$"
)
#: A container image reference: no whitespace anywhere (the core API refuses leading/trailing spaces).
IMAGE_PATTERN = r"^\S+$"
MODEL_URI_PATTERN = r"^(models:/[^/@]+(/[0-9]+|@[A-Za-z0-9_-]+)|s3://.+|file://.+|https?://.+|/.+)$"
DATA_URI_PATTERN = r"^(s3://.+|file://.+|https?://.+|/.+)$"
SINK_URI_PATTERN = r"^(s3://.+|file://.+|/.+)$"
DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
Name = Annotated[str, Field(min_length=1, max_length=63, pattern=DNS_LABEL_PATTERN)]


class ApiModel(BaseModel):
    """Base of every API model: camelCase on the wire, snake_case in Python, unknown keys refused."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    def wire(self) -> dict[str, Any]:
        """The JSON-ready dict as the API server stores it (camelCase, no unset optionals)."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


class Resources(ApiModel):
    """Compute resources of each pod; requests equal limits so pods get Guaranteed QoS."""

    cpu: Quantity | None = Field(None, description="CPU cores, e.g. 2 or 500m.")
    memory: Quantity | None = Field(None, description="Memory, e.g. 4Gi.")
    gpus: int = Field(0, ge=0, le=16, description="GPUs per pod (requested as gpuResourceName).")
    gpu_resource_name: str = Field(
        "nvidia.com/gpu",
        min_length=1,
        max_length=253,
        pattern=EXTENDED_RESOURCE_PATTERN,
        description="Extended resource name of the GPU (domain/name, outside kubernetes.io).",
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!self.split('/')[0].endsWith('kubernetes.io')",
                    "message": "an extended resource name may not be in the kubernetes.io domain",
                }
            ]
        },
    )

    @field_validator("gpu_resource_name")
    @classmethod
    def _not_native(cls, value: str) -> str:
        if value.split("/", maxsplit=1)[0].endswith("kubernetes.io"):
            raise ValueError("an extended resource name may not be in the kubernetes.io domain")
        return value


TOLERATION_RULES: list[dict[str, str]] = [
    {
        "rule": "(has(self.key) && self.key != '') || self.operator == 'Exists'",
        "message": "a toleration without a key must use operator Exists",
    },
    {
        "rule": "self.operator != 'Exists' || !has(self.value) || self.value == ''",
        "message": "operator Exists takes no value",
    },
    {
        "rule": "!has(self.tolerationSeconds) || (has(self.effect) && self.effect == 'NoExecute')",
        "message": "tolerationSeconds applies only to effect NoExecute",
    },
    {
        "rule": f"!has(self.key) || !self.key.contains('/') || size(self.key.split('/')[0]) <= {MAX_PREFIX}",
        "message": f"the prefix of a toleration key has at most {MAX_PREFIX} characters",
    },
]


class Toleration(ApiModel):
    """A pod toleration, with the core/v1 rules: a missing key tolerates everything (operator
    Exists), Exists takes no value, tolerationSeconds only with effect NoExecute."""

    model_config = ConfigDict(json_schema_extra=validations(TOLERATION_RULES))

    key: str | None = Field(None, max_length=317, pattern=f"^$|{LABEL_KEY}")
    operator: Literal["Exists", "Equal"] = "Equal"
    value: str | None = Field(None, pattern=LABEL_VALUE)
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    toleration_seconds: int | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _core_rules(self) -> Toleration:
        if self.key and label_key_problem(self.key):
            raise ValueError(f"key: {label_key_problem(self.key)}")
        if not self.key and self.operator != "Exists":
            raise ValueError(TOLERATION_RULES[0]["message"])
        if self.operator == "Exists" and self.value:
            raise ValueError(TOLERATION_RULES[1]["message"])
        if self.toleration_seconds is not None and self.effect != "NoExecute":
            raise ValueError(TOLERATION_RULES[2]["message"])
        return self


class KeyRef(ApiModel):
    """A key of a Secret or ConfigMap, by reference: values never appear in a spec."""

    name: Name
    # As the core API checks Secret/ConfigMap keys: never ".", "..", nor a name starting with "..".
    key: str = Field(min_length=1, max_length=253, pattern=r"^\.?[-_a-zA-Z0-9][-._a-zA-Z0-9]*$")
    optional: bool | None = None


class EnvSource(ApiModel):
    secret_key_ref: KeyRef | None = None
    config_map_key_ref: KeyRef | None = None


class EnvVar(ApiModel):
    """An environment variable: a literal value, or a reference to a Secret or ConfigMap key."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!(has(self.value) && has(self.valueFrom))",
                    "message": "set value or valueFrom, not both",
                }
            ]
        }
    )
    name: str = Field(min_length=1, pattern=r"^[A-Za-z_][A-Za-z0-9_.-]*$")
    value: str | None = None
    value_from: EnvSource | None = None


class Scheduling(ApiModel):
    """Where pods may run."""

    node_selector: LabelMap = label_map_field("Node labels the pods require (label keys and values).")
    tolerations: list[Toleration] = Field(default_factory=list, max_length=64)


class LocalRef(ApiModel):
    """A Secret or ConfigMap in the resource's own namespace."""

    name: Name
    optional: bool | None = None


class EnvFromSource(ApiModel):
    """Every key of a Secret or ConfigMap as environment variables (credentials stay in the Secret)."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "has(self.secretRef) != has(self.configMapRef)",
                    "message": "set exactly one of secretRef or configMapRef",
                }
            ]
        }
    )
    prefix: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_.-]*$")
    secret_ref: LocalRef | None = None
    config_map_ref: LocalRef | None = None


class PodEnvironment(Scheduling):
    """What a workload's pods run as and are told: identity, variables, credentials by reference."""

    service_account_name: Name | None = Field(
        None, description="ServiceAccount of the pods (e.g. one bound to a cloud storage role)."
    )
    env: list[EnvVar] = Field(default_factory=list)
    env_from: list[EnvFromSource] = Field(
        default_factory=list,
        description="Secrets/ConfigMaps exported as variables, e.g. AWS_ACCESS_KEY_ID, AWS_ENDPOINT_URL.",
    )


ConditionStatus = Literal["True", "False", "Unknown"]


class Condition(ApiModel):
    """metav1.Condition."""

    type: str
    status: ConditionStatus
    reason: str = Field(pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")
    message: str = ""
    last_transition_time: datetime
    observed_generation: int | None = None


def conditions_field() -> Any:
    """The `conditions` list, a map keyed by type (server-side apply merges by type)."""
    return Field(
        default_factory=list,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
