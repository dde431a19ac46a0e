"""TF Serving's REST API (``/v1/models/...``) on the stdlib ``ThreadingHTTPServer``.

Part of ``lensflow serve``, a stand-in for local development and tests; production serving is
TF Serving itself.
"""
from __future__ import annotations

import json
import logging
import re
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, Optional, Tuple

from lensflow.serving import json_codec, protos
from lensflow.serving.errors import BadRequest, NotFound, ServingError
from lensflow.serving.model_store import ModelStore

log = logging.getLogger("lensflow.serving.rest")

DEFAULT_MAX_REQUEST_BYTES = 64 * 1024 * 1024
MAX_DRAIN_BYTES = 1024 * 1024 * 1024
_CHUNK = 1024 * 1024
_ROUTE = re.compile(r"^/v1/models/(?P<name>[^/:]+)"
                    r"(?:/versions/(?P<version>[^/:]+)|/labels/(?P<label>[^/:]+))?"
                    r"(?P<action>/metadata|:predict|:classify|:regress)?$")


class RestApi:
    """Routes one request to the store; returns (HTTP status, JSON body)."""

    def __init__(self, store: ModelStore):
        self.store = store

    def handle(self, method: str, path: str, body: Optional[bytes]) -> Tuple[int, Dict[str, Any]]:
        try:
            return 200, self._dispatch(method, path, body)
        except ServingError as err:
            return err.http_status, {"error": str(err)}
        except Exception as err:  # a bug must answer 500, not drop the connection
            log.exception("%s %s failed", method, path)
            return 500, {"error": f"internal error: {type(err).__name__}: {err}"}

    def _dispatch(self, method: str, path: str, body: Optional[bytes]) -> Dict[str, Any]:
        match = _ROUTE.match(path.split("?", 1)[0])
        if not match:
            raise NotFound(f"Malformed request: {method} {path}")
        name, action = match["name"], match["action"] or ""
        if name != self.store.model_name:
            raise NotFound(f"Servable not found for request: Latest({name})")
        version = self.store.version_of_label(match["label"]) if match["label"] else \
            _version(match["version"])
        if method == "GET" and action == "":
            return protos.to_json_dict(protos.status_response(self.store.status(version)))
        if method == "GET" and action == "/metadata":
            return protos.metadata_json(protos.metadata_response(self.store.get(version), name))
        if method == "POST" and action == ":predict":
            return self._predict(version, body)
        if action in (":classify", ":regress"):
            raise BadRequest(f"{action[1:]} is not supported: the model exports predict "
                             f"signatures only")
        raise NotFound(f"Malformed request: {method} {path}")

    def _predict(self, version: Optional[int], body: Optional[bytes]) -> Dict[str, Any]:
        request = _parse_json(body)
        signature = request.get("signature_name") if isinstance(request, dict) else None
        if signature is not None and not isinstance(signature, str):
            raise BadRequest("'signature_name' must be a string")
        model = self.store.get(version)
        inputs, fmt = json_codec.parse_predict_request(request, list(model.input_specs(signature)))
        return json_codec.format_predict_response(self.store.predict(model, inputs, signature),
                                                  fmt)


def _version(text: Optional[str]) -> Optional[int]:
    if text is None:
        return None
    if not text.isdigit():
        raise BadRequest(f"version must be a non-negative integer, got {text!r}")
    return int(text)


def _parse_json(body: Optional[bytes]) -> Any:
    if not body:
        raise BadRequest("empty request body; send JSON with 'instances' or 'inputs'")
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise BadRequest(f"request body is not valid JSON: {err}") from err


def make_handler(api: RestApi, max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES):
    """A request handler class bound to ``api`` that refuses bodies over ``max_request_bytes``."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "lensflow-serve (TF Serving stand-in)"

        def do_GET(self):
            self._reply(*api.handle("GET", self.path, None))

        def do_POST(self):
            length = self._content_length()
            if length is None:
                return
            self._reply(*api.handle("POST", self.path, self.rfile.read(length)))

        def _content_length(self) -> Optional[int]:
            raw = self.headers.get("Content-Length")
            if raw is None or not raw.isdigit():
                self.close_connection = True
                self._reply(400, {"error": "a Content-Length header is required"})
                return None
            if int(raw) > max_request_bytes:
                self.close_connection = True
                self._drain(int(raw))
                self._reply(400, {"error": f"request body is {int(raw)} bytes; the limit is "
                                           f"{max_request_bytes} bytes"})
                return None
            return int(raw)

        def _drain(self, length: int) -> None:
            """Read and drop a refused body so the client gets the answer, not a reset."""
            remaining = length if length <= MAX_DRAIN_BYTES else 0
            while remaining > 0:
                chunk = self.rfile.read(min(_CHUNK, remaining))
                if not chunk:
                    break
                remaining -= len(chunk)

        def _reply(self, status: int, payload: Dict[str, Any]) -> None:
            data = json.dumps(payload).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, fmt, *args):
            log.info("%s %s", self.address_string(), fmt % args)

    return Handler


def make_http_server(api: RestApi, host: str, port: int,
                     max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES) -> ThreadingHTTPServer:
    """A bound (not yet serving) threading HTTP server for ``api``; port 0 picks a free one."""
    server = ThreadingHTTPServer((host, port), make_handler(api, max_request_bytes))
    server.daemon_threads = True
    return server

