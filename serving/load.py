"""A bounded load check of a TF Serving REST endpoint (``lensflow serve`` or the real server):
``clients`` threads on loopback send a fixed number of requests each, mostly real images and a
share of bad ones (oversized, empty, not an image). Good answers must equal the expected
classes; bad ones must be refused with HTTP 400 and a clear message; nothing else may happen.
Used by ``benchmarks/bench_serving_load.py`` (``make bench``) and, tiny, by the test suite."""
from __future__ import annotations

import base64
import json
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import numpy as np

NOT_AN_IMAGE = b"GIF? no: this text is not an image"


@dataclass
class BadRequestKind:
    """A request the server must refuse: its JSON body and a phrase the error must contain."""

    name: str
    body: bytes
    expect: str


def bad_requests(oversized_bytes: int) -> List[BadRequestKind]:
    """Oversized (a body of ``oversized_bytes``), empty and non-image requests."""
    image = base64.b64encode(NOT_AN_IMAGE).decode("ascii")
    return [BadRequestKind("oversized", b'{"instances": ["' + b"A" * oversized_bytes + b'"]}',
                           "limit"),
            BadRequestKind("empty", json.dumps({"instances": []}).encode(), "empty"),
            BadRequestKind("not_an_image", json.dumps({"instances": [{"b64": image}]}).encode(),
                           "image")]


@dataclass
class LoadResult:
    """Counts, latencies of good requests (ms) and every unexpected outcome (first 20 kept)."""

    clients: int
    requests: int = 0
    good: int = 0
    refused_as_expected: Dict[str, int] = field(default_factory=dict)
    unexpected: List[str] = field(default_factory=list)
    unexpected_count: int = 0
    seconds: float = 0.0
    latencies_ms: List[float] = field(default_factory=list, repr=False)

    def summary(self) -> dict:
        lat = np.asarray(self.latencies_ms) if self.latencies_ms else np.asarray([np.nan])
        return {"clients": self.clients, "requests": self.requests, "good": self.good,
                "refused_as_expected": self.refused_as_expected,
                "unexpected": self.unexpected_count, "unexpected_examples": self.unexpected,
                "seconds": round(self.seconds, 2),
                "good_per_second": round(self.good / self.seconds, 1) if self.seconds else None,
                "p50_ms": round(float(np.percentile(lat, 50)), 2),
                "p99_ms": round(float(np.percentile(lat, 99)), 2)}


def _post(url: str, body: bytes, timeout: float):
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        text = err.read()
        try:
            return err.code, json.loads(text)
        except ValueError:
            return err.code, {"error": text[:200].decode("utf-8", "replace")}


def run(url: str, images: Sequence[bytes], expected_ids: Sequence[int], clients: int,
        requests_per_client: int, bad_every: int = 10, oversized_bytes: int = 0,
        timeout: float = 60.0, max_seconds: float = 600.0) -> LoadResult:
    """Send ``clients`` × ``requests_per_client`` requests to ``url`` (``.../v1/models/NAME``);
    every ``bad_every``-th request of a client is a bad one (cycling through the kinds; the
    oversized kind only when ``oversized_bytes`` is set). Stops early after ``max_seconds``."""
    bodies = [json.dumps({"instances": [{"b64": base64.b64encode(image).decode("ascii")}]})
              .encode() for image in images]
    kinds = [k for k in bad_requests(oversized_bytes) if oversized_bytes or k.name != "oversized"]
    endpoint = f"{url}:predict"
    result = LoadResult(clients)
    lock = threading.Lock()
    deadline = time.monotonic() + max_seconds

    def note(problem: Optional[str], latency: Optional[float] = None, refused: str = "") -> None:
        with lock:
            result.requests += 1
            if problem:
                result.unexpected_count += 1
                if len(result.unexpected) < 20:
                    result.unexpected.append(problem)
            elif refused:
                result.refused_as_expected[refused] = result.refused_as_expected.get(refused, 0) + 1
            else:
                result.good += 1
                result.latencies_ms.append(latency)

    def client(index: int) -> None:
        for step in range(requests_per_client):
            if time.monotonic() > deadline:
                return
            try:
                if bad_every and step % bad_every == bad_every - 1:
                    kind = kinds[(index + step // bad_every) % len(kinds)]
                    status, answer = _post(endpoint, kind.body, timeout)
                    message = str(answer.get("error", ""))
                    ok = status == 400 and kind.expect in message.lower()
                    note(None if ok else f"{kind.name}: HTTP {status} {message[:120]}",
                         refused=kind.name)
                    continue
                pick = (index * requests_per_client + step) % len(bodies)
                started = time.perf_counter()
                status, answer = _post(endpoint, bodies[pick], timeout)
                latency = (time.perf_counter() - started) * 1000.0
                got = answer.get("predictions", [{}])[0].get("class_ids") if status == 200 else None
                note(None if got == expected_ids[pick] else
                     f"image {pick}: HTTP {status} class {got}, expected {expected_ids[pick]} "
                     f"{str(answer)[:120]}", latency)
            except (OSError, ValueError) as err:  # connection refused/reset, timeout, bad JSON
                note(f"{type(err).__name__}: {err}")

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        list(pool.map(client, range(clients)))
    result.seconds = time.monotonic() - started
    return result
