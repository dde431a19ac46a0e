"""Per-file work of ImageExampleGen's decode step without Beam.

``PYTHONPATH=<checkout> python benchmarks/bench_decode_step.py TREE N``: the checkout's decode
DoFn on the first N files in ingestion's order, one JSON line (files/s). It also runs the
per-file DoFn of checkouts before batching, so two checkouts can be timed alternately.
"""
import json
import sys
import time

from lensflow.components.image_example_gen import executor
from lensflow.components.image_example_gen.scan import scan_directory


def main(root: str, count: int) -> dict:
    candidates = executor.mixed_order(scan_directory(root).candidates)[:count]
    if hasattr(executor, "_DecodeBatch"):
        step = executor._DecodeBatch(40_000_000, 64 << 20)

        def run(batch):
            for start in range(0, len(batch), executor.BATCH_MAX):
                list(step.process(batch[start:start + executor.BATCH_MAX]))
    else:
        step = executor._Decode(40_000_000, 64 << 20)

        def run(batch):
            for candidate in batch:
                list(step.process(candidate))
    run(candidates[:300])   # warm-up: imports, tracing the served graph's check
    start = time.perf_counter()
    run(candidates)
    seconds = time.perf_counter() - start
    result = {"batched": hasattr(executor, "_DecodeBatch"), "files": len(candidates),
              "seconds": round(seconds, 2), "files_per_second": round(len(candidates) / seconds)}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
