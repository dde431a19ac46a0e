"""Aggregate the per-run records of ``lensflow compare`` into one row per variant.

A run record is a ``RunRecord`` (``lensflow.pipeline.compare.records``) or its JSON form: ``variant``, ``seed``,
``accuracy``, ``recall_min``, ``recall_max``, ``trainer_seconds``, ``params``, ``blessed``,
``executions`` ... Pure functions, no TensorFlow: unit-tested on hand-made records.
"""
from __future__ import annotations

import statistics
from typing import Any, Dict, Iterable, List, Optional, Sequence

INGESTION_COMPONENTS = ("ImageExampleGen", "StatisticsGen", "Transform")


def mean(values: Iterable[Optional[float]]) -> Optional[float]:
    """Mean of the known values (None when there is none)."""
    known = [float(v) for v in values if v is not None]
    return statistics.fmean(known) if known else None


def std(values: Iterable[Optional[float]]) -> Optional[float]:
    """Sample standard deviation (n - 1) of the known values; None below two values."""
    known = [float(v) for v in values if v is not None]
    return statistics.stdev(known) if len(known) >= 2 else None


def aggregate(runs: Sequence[Dict[str, Any]], order: Sequence[str]) -> List[Dict[str, Any]]:
    """One row per variant of ``order`` that has runs: accuracy mean ± std over seeds, per-class
    recall min/max (each averaged over seeds), mean Trainer wall time, parameters, blessings."""
    rows = []
    for name in order:
        mine = sorted((r for r in runs if r["variant"] == name), key=lambda r: r["seed"])
        if not mine:
            continue
        params = sorted({r["params"] for r in mine if r.get("params") is not None})
        rows.append({
            "variant": name,
            "n": len(mine),
            "seeds": [r["seed"] for r in mine],
            "accuracy": [r["accuracy"] for r in mine],
            "accuracy_mean": mean(r["accuracy"] for r in mine),
            "accuracy_std": std(r["accuracy"] for r in mine),
            "recall_min_mean": mean(r.get("recall_min") for r in mine),
            "recall_max_mean": mean(r.get("recall_max") for r in mine),
            "trainer_seconds_mean": mean(r.get("trainer_seconds") for r in mine),
            "params": params[0] if len(params) == 1 else None,
            "blessed": sum(1 for r in mine if r.get("blessed")),
        })
    return rows


def execution_counts(runs: Sequence[Dict[str, Any]]) -> Dict[str, Dict[str, int]]:
    """``{component: {state: runs}}`` over all runs, e.g. ``{"Transform": {"COMPLETE": 1,
    "CACHED": 3}}``: how often each component really executed."""
    out: Dict[str, Dict[str, int]] = {}
    for run in runs:
        for component, state in run.get("executions", {}).items():
            per = out.setdefault(component, {})
            per[state] = per.get(state, 0) + 1
    return dict(sorted(out.items()))


def recall_spread(recalls: Dict[str, Optional[float]]) -> Dict[str, Any]:
    """Lowest and highest per-class recall of one run, with the classes they belong to."""
    known = {name: value for name, value in recalls.items() if value is not None}
    if not known:
        return {"recall_min": None, "recall_max": None, "recall_min_class": None,
                "recall_max_class": None}
    low = min(known, key=lambda name: (known[name], name))
    high = max(known, key=lambda name: (known[name], name))
    return {"recall_min": known[low], "recall_max": known[high], "recall_min_class": low,
            "recall_max_class": high}
