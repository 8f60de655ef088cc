from __future__ import annotations

import pytest

from kubeloop_serving.errors import InvalidRequestError
from kubeloop_serving.infer_route import binary_header_length, infer_target

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("path", "target"),
    [
        ("/v2/models/iris/infer", ("iris", None)),
        ("/v2/models/iris/versions/3/infer", ("iris", "3")),
        ("/v2/models/iris", None),
        ("/v2/models/iris/ready", None),
        ("/v2/models/iris/versions/3/ready", None),
        ("/v2/models//infer/extra", None),
        ("/v1/models/iris/infer", None),
        ("/v2/models/iris/other/3/infer", None),
    ],
)
def test_infer_target(path: str, target: tuple[str, str | None] | None) -> None:
    assert infer_target(path) == target


def test_binary_header_length() -> None:
    assert binary_header_length({"headers": []}) is None
    assert binary_header_length({"headers": [(b"inference-header-content-length", b"42")]}) == 42
    with pytest.raises(InvalidRequestError, match="non-negative integer"):
        binary_header_length({"headers": [(b"inference-header-content-length", b"4x")]})
