"""REST's HTTP status <-> the gRPC status code of the same error, one table for both directions."""

from __future__ import annotations

from typing import Final

import grpc

#: REST's HTTP status -> the gRPC status code a call with the same error ends with.
STATUS_CODES: Final[dict[int, grpc.StatusCode]] = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    404: grpc.StatusCode.NOT_FOUND,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    500: grpc.StatusCode.INTERNAL,
    503: grpc.StatusCode.UNAVAILABLE,
}
#: A gRPC status code -> the HTTP status REST answers the same outcome with (metrics count gRPC
#: calls under it); codes REST never answers with are 500.
HTTP_STATUS: Final[dict[grpc.StatusCode, int]] = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    **{code: status for status, code in STATUS_CODES.items()},
}
