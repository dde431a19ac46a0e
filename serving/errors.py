"""Request errors shared by the REST and gRPC front ends, each with TF Serving's codes."""
from __future__ import annotations

import grpc


class ServingError(Exception):
    """A request the server refuses; ``http_status`` and ``grpc_code`` say how to report it."""

    http_status = 500
    grpc_code = grpc.StatusCode.INTERNAL


class BadRequest(ServingError):
    """Malformed, oversized or undecodable input (HTTP 400, INVALID_ARGUMENT)."""

    http_status = 400
    grpc_code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(ServingError):
    """Unknown model, version or route (HTTP 404, NOT_FOUND)."""

    http_status = 404
    grpc_code = grpc.StatusCode.NOT_FOUND


class ModelNotFound(FileNotFoundError):
    """No SavedModel where one was expected (a path problem, not a request problem)."""
