"""Render the CustomResourceDefinitions from the typed models: one source of truth for schema and code."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema

from kubeloop.api.common import GROUP, VERSION
from kubeloop.api.deployment import ModelDeploymentSpec
from kubeloop.api.deployment_status import ModelDeploymentStatus
from kubeloop.api.drift import DriftMonitorSpec, DriftMonitorStatus
from kubeloop.api.labels import NAME_RULE
from kubeloop.api.training import TrainingJobSpec, TrainingJobStatus

# JSON-Schema keywords the Kubernetes structural schema keeps; everything else is dropped.
KEPT_KEYWORDS = {
    "type", "format", "description", "default", "enum", "pattern", "minimum", "maximum",
    "exclusiveMinimum", "exclusiveMaximum", "minLength", "maxLength", "minItems", "maxItems",
    "minProperties", "maxProperties", "items", "properties", "required", "additionalProperties",
    "anyOf", "nullable", "x-kubernetes-validations", "x-kubernetes-int-or-string",
    "x-kubernetes-list-type", "x-kubernetes-list-map-keys", "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-map-type",
}  # fmt: skip


def _resolve(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        if "$ref" in node:
            target = defs[node["$ref"].rsplit("/", 1)[-1]]
            merged = {**_resolve(target, defs), **{k: v for k, v in node.items() if k != "$ref"}}
            return _resolve(merged, defs)
        return {k: _resolve(v, defs) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve(v, defs) for v in node]
    return node


def _drop_null(schema: dict[str, Any]) -> dict[str, Any]:
    """`X | None` becomes X: an optional field is simply not required."""
    options = schema.get("anyOf")
    if not options or schema.get("x-kubernetes-int-or-string"):
        return schema
    rest = [o for o in options if o.get("type") != "null"]
    if len(rest) == len(options):
        return schema
    outer = {k: v for k, v in schema.items() if k != "anyOf"}
    if outer.get("default", 0) is None:
        del outer["default"]
    return {**rest[0], **outer} if len(rest) == 1 else {**outer, "anyOf": rest}


def structural(schema: Any) -> Any:
    """Turn a pydantic JSON schema (refs resolved) into a Kubernetes structural schema."""
    if isinstance(schema, list):
        return [structural(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    schema = _drop_null(schema)
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key not in KEPT_KEYWORDS:
            continue
        if key == "properties":
            out[key] = {name: structural(sub) for name, sub in value.items()}
        elif key in ("items", "anyOf"):
            out[key] = structural(value)
        elif key == "additionalProperties":
            if value is True or value == {}:
                out["x-kubernetes-preserve-unknown-fields"] = True
            elif isinstance(value, dict):
                out[key] = structural(value)
        elif key in ("exclusiveMinimum", "exclusiveMaximum"):
            out["minimum" if key == "exclusiveMinimum" else "maximum"] = value
            out[key] = True
        else:
            out[key] = value
    if "const" in schema:
        out["enum"] = [schema["const"]]
    if out.get("type") == "object" and "properties" not in out and "additionalProperties" not in out:
        out["x-kubernetes-preserve-unknown-fields"] = True
    if "anyOf" in out and not out.get("x-kubernetes-int-or-string"):
        out.pop("anyOf")  # a union of object shapes: validated by the operator's model instead
        out.setdefault("x-kubernetes-preserve-unknown-fields", True)
    return out


class DefaultsFromFactories(GenerateJsonSchema):
    """Nested objects built by a default factory get that object as their schema default, so the
    API server fills in every nested default even when the user leaves the whole object out."""

    def default_schema(self, schema: core_schema.WithDefaultSchema) -> JsonSchemaValue:
        factory = schema.get("default_factory")
        if factory is None or schema.get("default_factory_takes_data"):
            return super().default_schema(schema)
        value = factory()  # type: ignore[call-arg]
        if not isinstance(value, BaseModel):
            return self.generate_inner(schema["schema"])
        dumped = value.model_dump(by_alias=True, exclude_none=True, mode="json")
        return {**self.generate_inner(schema["schema"]), "default": dumped}


def schema_of(model: type[BaseModel]) -> dict[str, Any]:
    raw = model.model_json_schema(by_alias=True, mode="validation", schema_generator=DefaultsFromFactories)
    defs = raw.pop("$defs", {})
    result: dict[str, Any] = structural(_resolve(raw, defs))
    return result


def _condition_column(name: str, condition: str, field: str = "status") -> dict[str, Any]:
    return {
        "name": name,
        "type": "string",
        "jsonPath": f'.status.conditions[?(@.type=="{condition}")].{field}',
    }


KINDS: dict[str, dict[str, Any]] = {
    "TrainingJob": {
        "plural": "trainingjobs",
        "short": ["tj"],
        "spec": TrainingJobSpec,
        "status": TrainingJobStatus,
        "columns": [
            {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
            # as a pod's STATUS: why it is where it is (Unschedulable, ImagePullBackOff, OOMKilled, ...)
            _condition_column("Reason", "Succeeded", "reason"),
            {"name": "Progress", "type": "number", "jsonPath": ".status.progress.percent"},
            {"name": "Epoch", "type": "integer", "jsonPath": ".status.progress.epoch"},
            {"name": "ETA-Seconds", "type": "number", "jsonPath": ".status.progress.etaSeconds"},
            {"name": "Workers", "type": "integer", "jsonPath": ".spec.workers"},
            {"name": "GPUs", "type": "integer", "jsonPath": ".spec.resources.gpus", "priority": 1},
            {"name": "Epochs", "type": "integer", "jsonPath": ".status.progress.totalEpochs", "priority": 1},
            {"name": "Step", "type": "integer", "jsonPath": ".status.progress.step", "priority": 1},
            {
                "name": "Trials",
                "type": "integer",
                "jsonPath": ".status.progress.trials.complete",
                "priority": 1,
            },
            {"name": "Reported", "type": "date", "jsonPath": ".status.progress.updated", "priority": 1},
            {"name": "Restarts", "type": "integer", "jsonPath": ".status.restarts", "priority": 1},
            {"name": "Model", "type": "string", "jsonPath": ".status.registeredModel.name"},
            {"name": "Version", "type": "string", "jsonPath": ".status.registeredModel.version"},
            {"name": "Gate", "type": "string", "jsonPath": ".status.challenge.outcome"},
            {"name": "Fairness", "type": "string", "jsonPath": ".status.fairness.outcome"},
            {
                "name": "Challenger",
                "type": "number",
                "jsonPath": ".status.challenge.challengerScore",
                "priority": 1,
            },
            {
                "name": "Champion",
                "type": "number",
                "jsonPath": ".status.challenge.championScore",
                "priority": 1,
            },
            {
                "name": "DPD",
                "type": "number",
                "jsonPath": ".status.fairness.demographicParityDifference",
                "priority": 1,
            },
            {
                "name": "EOD",
                "type": "number",
                "jsonPath": ".status.fairness.equalizedOddsDifference",
                "priority": 1,
            },
            {"name": "Run", "type": "string", "jsonPath": ".status.mlflowRunId", "priority": 1},
        ],
    },
    "ModelDeployment": {
        "plural": "modeldeployments",
        "short": ["mdep"],
        "spec": ModelDeploymentSpec,
        "status": ModelDeploymentStatus,
        "columns": [
            _condition_column("Ready", "Ready"),
            _condition_column("Reason", "Ready", "reason"),
            {"name": "Model", "type": "string", "jsonPath": ".spec.model.uri"},
            {"name": "Version", "type": "string", "jsonPath": ".status.model.version"},
            {"name": "Replicas", "type": "integer", "jsonPath": ".status.readyReplicas"},
            {"name": "Weight", "type": "integer", "jsonPath": ".status.rollout.weight"},
            {"name": "Rollout", "type": "string", "jsonPath": ".status.rollout.phase"},
            {"name": "Shadow", "type": "integer", "jsonPath": ".status.shadow.percent", "priority": 1},
            {"name": "AB-Header", "type": "string", "jsonPath": ".spec.abTest.header", "priority": 1},
            {"name": "URL", "type": "string", "jsonPath": ".status.url", "priority": 1},
        ],
    },
    "DriftMonitor": {
        "plural": "driftmonitors",
        "short": ["dm"],
        "spec": DriftMonitorSpec,
        "status": DriftMonitorStatus,
        "columns": [
            _condition_column("Ready", "Ready"),
            _condition_column("Reason", "Ready", "reason"),
            _condition_column("Drift", "DriftDetected"),
            {"name": "Target", "type": "string", "jsonPath": ".spec.target.modelDeployment"},
            {"name": "Share", "type": "number", "jsonPath": ".status.driftShare"},
            {"name": "Last-Check", "type": "date", "jsonPath": ".status.lastCheckTime"},
            {"name": "Schedule", "type": "string", "jsonPath": ".spec.schedule", "priority": 1},
        ],
    },
}


def crd(kind: str) -> dict[str, Any]:
    """The CustomResourceDefinition manifest of one kind."""
    info = KINDS[kind]
    columns = [*info["columns"], {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}]
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{info['plural']}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": info["plural"],
                "singular": kind.lower(),
                "shortNames": info["short"],
                "categories": ["kubeloop"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": columns,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": (info["spec"].__doc__ or kind).strip().splitlines()[0],
                            "required": ["spec"],
                            "x-kubernetes-validations": [NAME_RULE],
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": schema_of(info["spec"]),
                                "status": schema_of(info["status"]),
                            },
                        }
                    },
                }
            ],
        },
    }


def all_crds() -> dict[str, dict[str, Any]]:
    """File name -> CRD manifest, for every kind."""
    return {f"{GROUP}_{KINDS[k]['plural']}.yaml": crd(k) for k in KINDS}
