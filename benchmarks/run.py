"""Reproduce lensflow's speed figures: ``python benchmarks/run.py`` (or ``make bench``).

Runs the five comparisons of docs/PERFORMANCE.md on one pre-split image tree (by default the
official Fashion-MNIST train/test split exported from the Debian idx files), each side in the
same run on the same files, and writes ``results.json`` and ``results.md`` to ``--out``.
Not part of the test suite: it takes minutes to hours depending on ``--per-class``.
``run.py memory [--sizes N ...]`` runs the memory benchmark instead (``bench_memory.py``).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import yaml  # noqa: E402

import bench_markdown  # noqa: E402
import bench_memory  # noqa: E402
import bench_pipeline  # noqa: E402
import bench_serving  # noqa: E402
import bench_serving_load  # noqa: E402
import bench_throughput  # noqa: E402
from lensflow.components.image_example_gen import fashion_mnist  # noqa: E402
from lensflow.components.trainer import precision  # noqa: E402
from lensflow.pipeline.config import REPO_ROOT, load_config  # noqa: E402
from lensflow.pipeline import auto_model  # noqa: E402
from lensflow.pipeline.cli_options import explicit_keys  # noqa: E402

ALL = ("pipeline", "ingestion", "trainer_input", "serving", "serving_load")


def _args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="pre-split tree DATA/{train,test}/<class>/ "
                        "(default: Fashion-MNIST exported into --work)")
    parser.add_argument("--per-class", type=int, default=None,
                        help="Fashion-MNIST images per class and split (default: all 60k/10k)")
    parser.add_argument("--config", help="YAML config for both sides (model, epochs, batch...)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="default: the config's, or 2 without --config")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="default: the config's, or 128 without --config")
    parser.add_argument("--trainer-steps", type=int, default=300)
    parser.add_argument("--serving-repeats", type=int, default=300)
    parser.add_argument("--load-clients", type=int, default=8,
                        help="concurrent REST clients of the serving load check")
    parser.add_argument("--load-requests", type=int, default=200,
                        help="requests per client of the serving load check")
    parser.add_argument("--work", default="/tmp/lensflow-bench", help="scratch: data, home, logs")
    parser.add_argument("--out", default=os.path.join("benchmarks", "results"))
    parser.add_argument("--only", default=",".join(ALL),
                        help=f"which tables to report, of {','.join(ALL)} (all need the runs)")
    parser.add_argument("--keep", action="store_true", help="reuse --work (no fresh home)")
    return parser.parse_args(argv)


def _prepare(args) -> tuple:
    """Fresh work dir, the data tree, and one YAML config both sides read (``model.family:
    auto`` resolved from the data first, so the plain script trains the family lensflow picks
    and the results name it)."""
    if os.path.exists(args.work) and not args.keep:
        shutil.rmtree(args.work)
    os.makedirs(args.work, exist_ok=True)
    data = args.data
    if not data:
        data = os.path.join(args.work, "fashion_mnist")
        if not os.path.isdir(data):
            fashion_mnist.export(data, per_class=args.per_class)
    overrides = {"data.path": os.path.abspath(data), "home": os.path.join(args.work, "home"),
                 **_training_overrides(args)}
    cfg, _ = auto_model.resolve(load_config(args.config, overrides),
                                explicit_keys(args.config, **overrides))
    config_path = os.path.join(args.work, "config.yaml")
    with open(config_path, "w", encoding="utf-8") as fh:
        yaml.safe_dump(cfg.to_dict(), fh, sort_keys=False)
    return os.path.abspath(data), cfg, config_path


def _training_overrides(args) -> dict:
    """``--epochs``/``--batch-size`` when given; without a config, the benchmark's defaults."""
    defaults = {} if args.config else {"train.epochs": 2, "train.batch_size": 128}
    given = {"train.epochs": args.epochs, "train.batch_size": args.batch_size}
    return {**defaults, **{k: v for k, v in given.items() if v is not None}}


def main(argv=None) -> dict:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["memory"]:
        return bench_memory.main(argv[1:])
    args = _args(argv)
    wanted = set(args.only.split(","))
    data, cfg, config_path = _prepare(args)
    results = {"started": time.strftime("%Y-%m-%d %H:%M:%S"), "data": data,
               "train_images": len(bench_throughput.image_files(os.path.join(data, "train"))),
               "test_images": len(bench_throughput.image_files(os.path.join(data, "test"))),
               "epochs": cfg.train.epochs, "batch_size": cfg.train.batch_size,
               "model": cfg.model.family, "machine": {"cpus": os.cpu_count(),
                                                      "python": platform.python_version(),
                                                      "precision": precision.resolve(
                                                          cfg.train.precision,
                                                          cfg.model.family)}}
    runs = bench_pipeline.overhead_and_cache(config_path, data, args.work)
    summary = runs.pop("first_summary")
    if "pipeline" in wanted:
        results.update(runs)
    if "ingestion" in wanted:
        files = bench_throughput.image_files(data)
        channels = 1 if cfg.image.color_mode == "grayscale" else 3
        results["ingestion"] = {
            "lensflow": bench_throughput.pipeline_stage_rates(summary),
            "tf_data_decode_resize": bench_throughput.tf_data_decode(files, cfg.image.size, channels)}
    if "trainer_input" in wanted:
        results["trainer_input"] = bench_throughput.trainer_input(
            cfg.pipeline_root, cfg, args.trainer_steps)
    if "serving" in wanted:
        model_dir = summary.get("pushed_model_dir") or os.path.join(summary["model_uri"], "Format-Serving")
        test_files = bench_throughput.image_files(os.path.join(data, "test"))[:640]
        encoded = [open(p, "rb").read() for p in test_files]
        results["serving"] = {"model_dir": model_dir, **bench_serving.serving(
            model_dir, encoded, args.serving_repeats)}
    if "serving_load" in wanted:
        test_files = bench_throughput.image_files(os.path.join(data, "test"))[:256]
        results["serving_load"] = bench_serving_load.serving_load(
            cfg.serving_dir, cfg.push.model_name, [open(p, "rb").read() for p in test_files],
            args.load_clients, args.load_requests,
            batching_file=str(REPO_ROOT / "kubeflow" / "serving" / "batching.config"))
    results["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "results.json"), "w", encoding="utf-8") as fh:
        json.dump(results, fh, indent=2)
    markdown = bench_markdown.render(results)
    with open(os.path.join(args.out, "results.md"), "w", encoding="utf-8") as fh:
        fh.write(markdown)
    print(markdown)
    return results


if __name__ == "__main__":
    main()
