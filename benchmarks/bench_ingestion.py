"""Ingestion throughput: ImageExampleGen's executor alone on an image tree, as TFX runs it.

``python benchmarks/bench_ingestion.py --data TREE [--mode multi_processing --workers 2]``
prints one JSON line (files, seconds, images/s) and, with ``--digest``, a digest of everything
ingestion wrote (examples of every split, the report), so two versions of the code can be
compared on the same tree: run it once per checkout with that checkout first on PYTHONPATH.
"""
from __future__ import annotations

import argparse
import glob
import gzip
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import tensorflow as tf  # noqa: E402
from tfx.types import standard_artifacts, standard_component_specs  # noqa: E402
from tfx.utils import proto_utils  # noqa: E402

from lensflow.components.image_example_gen import report  # noqa: E402
from lensflow.components.image_example_gen.component import ImageExampleGen  # noqa: E402
from lensflow.components.image_example_gen.executor import Executor  # noqa: E402
from lensflow.pipeline.config import CUSTOM_CONFIG_KEY, load_config  # noqa: E402
from lensflow.pipeline.pipeline import beam_pipeline_args  # noqa: E402


def ingest(data: str, out: str, overrides: dict) -> dict:
    """Run the executor on ``data`` into ``out``; wall seconds and the report's counts."""
    cfg = load_config(None, {"data.path": data, **overrides})
    component = ImageExampleGen(input_base=data,
                                custom_config={CUSTOM_CONFIG_KEY: cfg.to_json(["data"])})
    props = {key: proto_utils.proto_to_json(value) if hasattr(value, "DESCRIPTOR") else value
             for key, value in component.exec_properties.items()}
    examples = standard_artifacts.Examples()
    examples.uri = out
    executor = Executor(Executor.Context(beam_pipeline_args=beam_pipeline_args(cfg),
                                         tmp_dir=tempfile.mkdtemp()))
    start = time.perf_counter()
    executor.Do({}, {standard_component_specs.EXAMPLES_KEY: [examples]}, props)
    seconds = time.perf_counter() - start
    summary = report.read(out)
    return {"found": summary["found"], "ingested": summary["ingested"],
            "rejected": len(summary["rejected"]), "seconds": round(seconds, 2),
            "images_per_second": round(summary["found"] / seconds, 1),
            "beam": beam_pipeline_args(cfg)[:3]}


def digest(out: str) -> str:
    """sha256 over the sorted examples of each split (serialised deterministically: a proto
    map's order on the wire is not) and the ingestion report."""
    total = hashlib.sha256()
    for split in sorted(glob.glob(os.path.join(out, "Split-*"))):
        records = []
        for path in sorted(glob.glob(os.path.join(split, "*.gz"))):
            with gzip.open(path, "rb") as fh:
                records.extend(tf.train.Example.FromString(record).SerializeToString(
                    deterministic=True) for record in _tfrecords(fh.read()))
        total.update(os.path.basename(split).encode())
        for record in sorted(records):
            total.update(hashlib.sha256(record).digest())
    summary = report.read(out)
    total.update(json.dumps(summary, sort_keys=True).encode())
    return total.hexdigest()


def _tfrecords(blob: bytes):
    """The payloads of a TFRecord file (length, crc, data, crc)."""
    pos = 0
    while pos < len(blob):
        length = int.from_bytes(blob[pos:pos + 8], "little")
        yield blob[pos + 12:pos + 12 + length]
        pos += 16 + length


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--mode", default="in_memory",
                        choices=("in_memory", "multi_threading", "multi_processing"))
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--digest", action="store_true")
    parser.add_argument("--keep", help="write the examples here (default: a removed temp dir)")
    args = parser.parse_args(argv)
    out = args.keep or tempfile.mkdtemp(prefix="ingest-")
    result = ingest(os.path.abspath(args.data), out, {
        "beam.direct_running_mode": args.mode, "beam.direct_num_workers": args.workers})
    if args.digest:
        result["digest"] = digest(out)
    if not args.keep:
        shutil.rmtree(out, ignore_errors=True)
    print(json.dumps(result), file=sys.stdout, flush=True)
    return result


if __name__ == "__main__":
    main()
