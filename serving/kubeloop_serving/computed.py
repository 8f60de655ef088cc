"""One inference as the data plane hands it to a protocol: computed, then encoded."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from kubeloop_serving.attributes import Attributes
from kubeloop_serving.datatypes import Tensors
from kubeloop_serving.request import InferenceRequest
from kubeloop_serving.response import EncodedResponse, OutputChoice


@dataclass(frozen=True)
class Computed:
    """One inference before encoding: what any protocol's answer is made of."""

    request: InferenceRequest
    request_id: str
    version: str
    outputs: Tensors
    choices: Sequence[OutputChoice]
    attributes: Attributes

    @property
    def inputs(self) -> Tensors:
        return self.request.inputs


@dataclass(frozen=True)
class Inference:
    """One answer computed here: the encoded response and the tensors it came from."""

    response: EncodedResponse
    request_id: str
    version: str
    inputs: Tensors
    outputs: Tensors
    attributes: Attributes
