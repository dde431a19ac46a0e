"""One fuzz batch in its own process: ``python fuzz_worker.py PATH MANIFEST START STOP RESULTS``.

``PATH`` is ``ingestion`` (``load_image``, the executor's per-file decode) or ``serving`` (the
served decode graph, or ``serving_default`` of a pushed model). One JSON line per input is
appended and flushed before the next input starts, so when the process dies the parent knows
exactly which input killed it and resumes after it.
"""
from __future__ import annotations

import io
import json
import os
import re
import sys
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

_COMPARE_PIXELS = 4_000_000   # pixel parity is checked for images up to this size


class Memory:
    """Peak resident memory of one call, in MB above the resident size before it (Linux: the
    high-water mark is reset through /proc/self/clear_refs; elsewhere ru_maxrss growth)."""

    def __init__(self):
        try:
            with open("/proc/self/clear_refs", "w") as handle:
                handle.write("5")
            self.resettable = True
        except OSError:
            self.resettable = False

    @staticmethod
    def _status(key: str) -> float:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith(key):
                    return int(line.split()[1]) / 1024
        return 0.0

    def start(self) -> float:
        if self.resettable:
            with open("/proc/self/clear_refs", "w") as handle:
                handle.write("5")
            return self._status("VmRSS:")
        import resource
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    def peak_above(self, before: float) -> float:
        if self.resettable:
            return max(0.0, self._status("VmHWM:") - before)
        import resource
        return max(0.0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - before)


def _ingestion(max_pixels: int, max_bytes: int, ingested_dir: str):
    from lensflow.components.image_example_gen.decode import RejectedImage, load_image

    def run(item):
        try:
            image = load_image(item["path"], max_pixels=max_pixels, max_bytes=max_bytes)
        except RejectedImage as err:
            return {"outcome": "rejected", "reason": err.reason}
        if image.height * image.width <= _COMPARE_PIXELS:
            with open(os.path.join(ingested_dir, item["name"] + ".png"), "wb") as handle:
                handle.write(image.png_bytes)
        return {"outcome": "accepted", "shape": [image.height, image.width, image.png_channels]}
    return run


def _error_message(err) -> str:
    """The reason of a TF error: an assertion's text, else the op's message (without the
    traceback and node names TF wraps it in)."""
    found = re.search(r"assertion failed: \[(.*?)\]", err.message, re.S)
    if found:
        return found.group(1)
    lines = [line.strip() for line in err.message.splitlines()
             if line.strip() and not line.strip().startswith(("[[", "File ", "Detected at"))
             and line.strip() != "Graph execution error:"]
    return re.sub(r"\s*\[Op:[^]]*\]$", "", lines[-1]) if lines else err.message.strip()


def _serving(max_pixels: int, max_bytes: int, ingested_dir: str, model_dir: str):
    import numpy as np
    import tensorflow as tf
    from PIL import Image

    from lensflow.components.transform import decode, features, preprocessing
    from lensflow.pipeline.config import ImageConfig

    if model_dir:
        served_fn = tf.saved_model.load(model_dir).signatures["serving_default"]

        def served(data):
            served_fn(**{features.SERVING_IMAGES_INPUT: tf.constant([data])})
    else:
        image_cfg = ImageConfig()

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
        def graph(images):  # serving_default's decode: byte limits, header checks, decode, resize
            images = decode.check_request_bytes(images, max_bytes)
            return preprocessing.decode_and_resize(images, image_cfg, max_pixels)

        def served(data):
            graph(tf.constant([data]))

    pixels = tf.function(lambda data: decode.decode_raw_image(data, max_pixels),
                         input_signature=[tf.TensorSpec([], tf.string)])

    def pixel_diff(item, data):
        """Largest difference between the served pixels and ingestion's (None: not compared)."""
        path = os.path.join(ingested_dir, item["name"] + ".png")
        if not os.path.exists(path):
            return None
        reference = np.asarray(Image.open(path)).astype(np.int32)
        image, is_grey = pixels(tf.constant(data))
        image = image.numpy().astype(np.int32)
        if reference.ndim == 2:
            if not bool(is_grey):
                return "served as colour, ingested as grey"
            image = image[..., 0]
        if image.shape != reference.shape:
            return f"shape {list(image.shape)} served, {list(reference.shape)} ingested"
        return int(np.abs(image - reference).max()) if image.size else 0

    for name in ("png_rgb", "jpeg", "gif", "bmp"):   # trace both graphs before timing inputs
        warm = corpus_file(name)
        served(warm)
        pixels(tf.constant(warm))

    def run(item):
        with open(item["path"], "rb") as handle:
            data = handle.read()
        header = decode.serving_refusal(data, max_pixels) if data else "empty image (zero bytes)"
        try:
            served(data)
        except tf.errors.InvalidArgumentError as err:
            return {"outcome": "rejected", "reason": _error_message(err),
                    "header_refusal": header}
        result = {"outcome": "accepted", "header_refusal": header}
        if not model_dir:
            result["pixel_diff"] = pixel_diff(item, data)
        return result
    return run


def corpus_file(name: str) -> bytes:
    from lensflow.components.transform.tests import corpus
    return corpus.corpus()[name]


def main(argv) -> None:
    path, manifest, start, stop, results = argv[:5]
    with open(manifest, encoding="utf-8") as handle:
        spec = json.load(handle)
    items = spec["inputs"][int(start):int(stop)]
    limits = (spec["max_pixels"], spec["max_bytes"], spec["ingested_dir"])
    run = _ingestion(*limits) if path == "ingestion" else _serving(*limits, spec["model"])
    memory = Memory()
    with open(results, "a", encoding="utf-8") as out:
        for item in items:
            before = memory.start()
            began = time.perf_counter()
            try:
                result = run(item)
            except Exception as exc:  # noqa: BLE001 - any other exception is a finding, counted
                result = {"outcome": "error", "reason": f"{type(exc).__name__}: {exc}"[:300]}
            result.update(id=item["id"], seconds=round(time.perf_counter() - began, 4),
                          peak_mb=round(memory.peak_above(before), 1))
            out.write(json.dumps(result) + "\n")
            out.flush()


if __name__ == "__main__":
    main(sys.argv[1:])
