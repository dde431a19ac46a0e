"""Benchmark 6: the serving path under bounded load — ``lensflow serve`` (the TF Serving stand-in)
started as its own process on loopback over a pushed model, ``--clients`` concurrent REST
clients sending ``--requests`` each (one image per request, every tenth a bad one: oversized,
empty or not an image). Reports throughput, p50/p99 of the good requests, refusals and
unexpected outcomes, and whether the server is still serving at the end.

    python benchmarks/bench_serving_load.py --model-dir ~/.lensflow/serving --images DIR
(also run by ``benchmarks/run.py`` / ``make bench`` on the benchmark's pushed model)."""
from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import tempfile
import time
from typing import Dict, List, Optional

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from lensflow.components.serving_check.model_server import ModelServer  # noqa: E402
from lensflow.serving import load  # noqa: E402
from lensflow.serving.client import LocalPredictor  # noqa: E402
from lensflow.serving.model_store import resolve_model_base  # noqa: E402
from lensflow.serving.saved_model import MAX_STRING_BYTES  # noqa: E402


def serving_load(model_dir: str, model_name: str, images: List[bytes], clients: int = 8,
                 requests_per_client: int = 200, max_seconds: float = 900.0,
                 batching_file: Optional[str] = None) -> Dict:
    """Start the stand-in on ``model_dir`` (a serving dir or model base; batching as
    ``batching_file`` says, if given), load it, stop it."""
    base = resolve_model_base(model_dir, model_name)
    expected = [int(i) for i in LocalPredictor(base, model_name).predict(images).class_ids]
    with tempfile.TemporaryDirectory() as scratch:
        extra = ["--batching-parameters-file", batching_file] if batching_file else []
        server = ModelServer(base, model_name, os.path.join(scratch, "serve.log"),
                             extra_args=extra)
        with server:
            version = _newest(base)
            load_seconds = server.wait_available(time.monotonic() + 300, version=version)
            url = f"{server.rest_url}/v1/models/{model_name}"
            result = load.run(url, images, expected, clients, requests_per_client,
                              bad_every=10, oversized_bytes=MAX_STRING_BYTES + 1,
                              max_seconds=max_seconds)
            alive = server.running() and server.state(version)[0] == "AVAILABLE"
    return {"server": server.kind, "batching": batching_file, "model_base": base,
            "images": len(images),
            "load_seconds": round(load_seconds, 2), "still_serving": alive, **result.summary()}


def _newest(base: str) -> int:
    from lensflow.components.pusher.versions import versions

    return versions(base)[-1]


def main(argv=None) -> Dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", required=True, help="serving dir or model base")
    parser.add_argument("--model-name", default="lensflow")
    parser.add_argument("--images", required=True, help="folder of images (searched recursively)")
    parser.add_argument("--max-images", type=int, default=256)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=200, help="per client")
    parser.add_argument("--batching-parameters-file",
                        help="TF Serving batching file for the stand-in "
                             "(e.g. kubeflow/serving/batching.config)")
    args = parser.parse_args(argv)
    paths = sorted(glob.glob(os.path.join(args.images, "**", "*.png"), recursive=True))
    images = [open(p, "rb").read() for p in paths[:: max(1, len(paths) // args.max_images)]]
    out = serving_load(args.model_dir, args.model_name, images[: args.max_images],
                       args.clients, args.requests,
                       batching_file=args.batching_parameters_file)
    print(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
