"""A stand-in for the Kubeflow Pipelines REST API (v2beta1), for testing ``lensflow submit``.

It is not KFP: it answers just the calls ``kfp.Client.create_run_from_pipeline_package`` makes
(health, experiment lookup and creation, run creation) on 127.0.0.1, and records each request
so tests can assert on what the real client sent.
"""
from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, List, Optional
from urllib.parse import parse_qs, urlsplit

API = "/apis/v2beta1"
EXPERIMENT_ID = "standin-experiment-1"
RUN_ID = "standin-run-1"


@dataclass
class Request:
    method: str
    path: str
    query: Dict[str, List[str]]
    body: Optional[Dict[str, Any]]


@dataclass
class StandInKfp:
    """Recorded requests, and a switch to refuse run creation with an HTTP error."""

    requests: List[Request] = field(default_factory=list)
    refuse_runs_with: Optional[int] = None

    def calls(self, method: str, path: str) -> List[Request]:
        return [r for r in self.requests if r.method == method and r.path == API + path]


def _handler(state: StandInKfp):
    class Handler(BaseHTTPRequestHandler):
        timeout = 10

        def log_message(self, *args):  # keep pytest output quiet
            pass

        def _record(self, method: str) -> Request:
            url = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            request = Request(method, url.path, parse_qs(url.query),
                              json.loads(raw) if raw else None)
            state.requests.append(request)
            return request

        def _reply(self, status: int, payload: Dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            request = self._record("GET")
            if request.path == API + "/healthz":
                self._reply(200, {"multi_user": False})
            elif request.path == API + "/experiments":
                self._reply(200, {"experiments": [], "total_size": 0})
            else:
                self._reply(404, {"error": f"stand-in has no GET {request.path}"})

        def do_POST(self):
            request = self._record("POST")
            body = request.body or {}
            if request.path == API + "/experiments":
                self._reply(200, {"experiment_id": EXPERIMENT_ID,
                                  "display_name": body.get("display_name")})
            elif request.path == API + "/runs" and state.refuse_runs_with:
                self._reply(state.refuse_runs_with, {"error": "stand-in refuses this run"})
            elif request.path == API + "/runs":
                self._reply(200, {"run_id": RUN_ID, "display_name": body.get("display_name"),
                                  "experiment_id": body.get("experiment_id"), "state": "PENDING"})
            else:
                self._reply(404, {"error": f"stand-in has no POST {request.path}"})

    return Handler


class serve_standin:
    """Context manager: ``with serve_standin() as (host, state): ...`` on 127.0.0.1."""

    def __enter__(self):
        self.state = StandInKfp()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self.state))
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.1}, daemon=True)
        self.thread.start()
        return f"http://127.0.0.1:{self.server.server_address[1]}", self.state

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)
        return False
