"""``lensflow compare``: the article's levers side by side, each variant x seed a real pipeline run.

All runs share one pipeline name (``<name>-compare-<hash of data and subset>``), so ImageExampleGen,
StatisticsGen and Transform execute once and are cache hits afterwards; only the Trainer and what
follows it re-run per variant and seed (a variant that changes Transform's input, ``transfer``'s
un-normalised pixels, re-runs Transform once). Blessed models are pushed under the comparison's
own serving folder, one model name per run, so the user's serving directory is never touched and
each run is judged on the absolute thresholds, not against whichever variant ran before it.
Metrics are reported whether or not a run was blessed.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple

from lensflow.components.image_example_gen.scan import scan_directory, scan_manifest
from lensflow.pipeline.compare import subset as compare_subset
from lensflow.pipeline.compare.records import run_record
from lensflow.pipeline.compare.stats import aggregate, execution_counts
from lensflow.pipeline.compare.variants import VARIANTS, resolved_overrides, variant_config
from lensflow.pipeline.config import LensflowConfig

JSON_NAME, MARKDOWN_NAME, HTML_NAME = "compare.json", "compare.md", "compare.html"


class CompareError(RuntimeError):
    """The comparison could not produce any result."""


@dataclass
class ComparePlan:
    """What to compare: variant names, seeds per variant, optional training subset, output."""

    variants: List[str]
    seeds: int = 3
    subset: Optional[int] = None
    out_dir: Optional[str] = None
    config_file: Optional[str] = None
    sets: Tuple[str, ...] = ()


def data_source(cfg: LensflowConfig) -> str:
    """The dataset the user pointed at: a manifest CSV or an image folder (absolute)."""
    source = cfg.data.manifest or cfg.data.path
    if not source:
        raise CompareError("set --data (an image folder) or data.manifest in the config")
    return os.path.abspath(source)


def pipeline_name(cfg: LensflowConfig, subset: Optional[int]) -> str:
    """``<name>-compare-<8 hex>``: one cache and metadata store per dataset and subset size."""
    key = json.dumps({"data": data_source(cfg), "subset": subset}, sort_keys=True)
    return f"{cfg.pipeline_name}-compare-{hashlib.sha256(key.encode()).hexdigest()[:8]}"


def default_out_dir(cfg: LensflowConfig) -> str:
    """``<home>/compare/<local timestamp>``."""
    return str(cfg.home_dir / "compare" / dt.datetime.now().strftime("%Y%m%d-%H%M%S"))


def base_config(cfg: LensflowConfig, plan: ComparePlan, out_dir: str
                ) -> tuple[LensflowConfig, Optional[compare_subset.Subset]]:
    """The user's config pointed at the comparison's pipeline, serving folder and data (the
    subset manifest, written into ``out_dir``, when ``plan.subset`` is set). Its pushes are
    never served, so no model server is started to check them (``serving_check.enabled``)."""
    overrides: Dict[str, Any] = {"pipeline_name": pipeline_name(cfg, plan.subset),
                                 "push.serving_dir": os.path.join(out_dir, "serving"),
                                 "serving_check.enabled": False}
    subset = None
    if plan.subset is not None:
        buckets = {**cfg.data.split_buckets, "test": cfg.data.split_buckets.get("test", 1)}
        source = data_source(cfg)
        scan = scan_manifest(source) if cfg.data.manifest else scan_directory(source)
        subset = compare_subset.select(scan, plan.subset, cfg.train.seed, buckets)
        manifest = compare_subset.write_manifest(
            subset, os.path.join(out_dir, compare_subset.MANIFEST_FOLDER,
                                 compare_subset.MANIFEST_NAME))
        overrides.update({"data.manifest": manifest, "data.path": None,
                          "data.split_buckets": buckets})
    return cfg.replace(**overrides), subset


def _settings(cfg: LensflowConfig, base: LensflowConfig, plan: ComparePlan, out_dir: str,
              subset: Optional[compare_subset.Subset]) -> Dict[str, Any]:
    return {
        "data": data_source(cfg), "subset": plan.subset, "seeds": plan.seeds,
        "seed_values": [cfg.train.seed + i for i in range(plan.seeds)],
        "epochs": cfg.train.epochs, "batch_size": cfg.train.batch_size,
        "image": cfg.to_dict()["image"], "variants": plan.variants,
        "pipeline_name": base.pipeline_name, "metadata_path": base.metadata_path,
        "serving_dir": base.serving_dir, "out_dir": out_dir, "home": str(cfg.home_dir),
        "manifest": base.data.manifest if subset else None,
        "held_out_source": subset.held_out_source if subset else None,
        "subset_counts": subset.totals() if subset else None,
        "subset_warnings": subset.warnings if subset else [],
        "config_file": os.path.abspath(plan.config_file) if plan.config_file else None,
        "sets": list(plan.sets),
    }


def _evaluation(runs: List[Dict[str, Any]]) -> Dict[str, Any]:
    """Which split the metrics are on and how many images each split held (same for all runs)."""
    first = runs[0] if runs else {}
    return {"split": first.get("evaluation_split"), "split_totals": first.get("split_totals", {}),
            "example_count": first.get("example_count")}


def run_compare(cfg: LensflowConfig, plan: ComparePlan, *, show_progress: bool = False,
                echo: Callable[[str], None] = print) -> Dict[str, Any]:
    """Run every variant x seed, then write ``compare.json``, ``compare.md`` and
    ``compare.html`` into the output folder; returns the result (what compare.json holds)."""
    from lensflow.components.report.compare import write_outputs
    from lensflow.pipeline.runners import local

    out_dir = os.path.abspath(plan.out_dir or default_out_dir(cfg))
    os.makedirs(out_dir, exist_ok=True)
    base, subset = base_config(cfg, plan, out_dir)
    runs: List[Dict[str, Any]] = []
    failures: List[Dict[str, Any]] = []
    total = len(plan.variants) * plan.seeds
    for v_index, name in enumerate(plan.variants):
        for i in range(plan.seeds):
            run_cfg = variant_config(base, name, i)
            seed = run_cfg.train.seed
            run_cfg = run_cfg.replace(**{"push.model_name": f"{name}-seed{seed}"})
            echo(f"[{v_index * plan.seeds + i + 1}/{total}] {name}, seed {seed}")
            try:
                local.run(run_cfg, show_progress=show_progress)
            except Exception as err:  # noqa: BLE001 - one failed variant must not hide the others
                echo(f"  failed: {type(err).__name__}: {err}")
                failures.append({"variant": name, "seed": seed,
                                 "error": f"{type(err).__name__}: {err}"})
                continue
            runs.append(run_record(base.metadata_path, name, seed))
            echo(f"  accuracy {runs[-1]['accuracy']} on the '{runs[-1]['evaluation_split']}' "
                 f"split, {'blessed' if runs[-1]['blessed'] else 'not blessed'}")
    if not runs:
        raise CompareError(f"every run failed; first failure: {failures[0]['error']}")
    result = {
        "created_at": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "settings": _settings(cfg, base, plan, out_dir, subset),
        "variant_info": {name: {"description": VARIANTS[name].description,
                                "overrides": resolved_overrides(base, name)}
                         for name in plan.variants},
        "evaluation": _evaluation(runs),
        "variants": aggregate(runs, plan.variants),
        "executions": execution_counts(runs),
        "runs": runs, "failures": failures,
    }
    result["paths"] = write_outputs(result, out_dir)
    return result
