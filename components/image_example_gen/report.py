"""The ingestion report: what was found, ingested, rejected (with reasons) and ignored, and the
duplicate groups (copies dropped by a policy are among the rejected, with the reason)."""
from __future__ import annotations

import json
import os
from typing import Any, Dict

import tensorflow as tf

from lensflow.components.image_example_gen import duplicates
from lensflow.components.image_example_gen.scan import DatasetError, ScanResult, check_classes

REPORT_FILE = "ingestion_report.json"


def _read_jsonl(pattern: str):
    for path in sorted(tf.io.gfile.glob(pattern)):
        with tf.io.gfile.GFile(path) as fh:
            for line in fh:
                if line.strip():
                    yield json.loads(line)


def build(scan: ScanResult, work_dir: str) -> Dict[str, Any]:
    """Merge scan-time skips with Beam's rejects and per-split counts into one summary."""
    rejected = [{"path": s.rel_path, "reason": s.reason}
                for s in scan.skipped if s.kind == "rejected"]
    rejected += list(_read_jsonl(os.path.join(work_dir, "rejected*.jsonl")))
    ignored = [{"path": s.rel_path, "reason": s.reason}
               for s in scan.skipped if s.kind == "ignored"]
    splits: Dict[str, Dict[str, Any]] = {}
    for split, label, count in _read_jsonl(os.path.join(work_dir, "counts*.jsonl")):
        entry = splits.setdefault(split, {"total": 0, "per_class": {}})
        entry["total"] += count
        entry["per_class"][label] = entry["per_class"].get(label, 0) + count
    for entry in splits.values():
        entry["per_class"] = dict(sorted(entry["per_class"].items()))
    ingested = sum(entry["total"] for entry in splits.values())
    not_serveable = list(_read_jsonl(os.path.join(work_dir, "not_serveable*.jsonl")))
    found = len(scan.candidates) + len(scan.skipped)
    dups = next(_read_jsonl(os.path.join(work_dir, "duplicates*.json")), None)
    return {
        "layout": scan.layout,
        "found": found,
        "ingested": ingested,
        "rejected": sorted(rejected, key=lambda r: r["path"]),
        "ignored": sorted(ignored, key=lambda r: r["path"]),
        "warnings": (list(scan.warnings) + _serving_warnings(not_serveable)
                     + (duplicates.warnings(dups) if dups else [])),
        "not_serveable": sorted(not_serveable, key=lambda r: r["path"]),
        "splits": dict(sorted(splits.items())),
        "classes": sorted({c for e in splits.values() for c in e["per_class"]}),
        "duplicates": dups,
    }


def _serving_warnings(not_serveable) -> list:
    """One warning for ingested files the served model would refuse as sent."""
    if not not_serveable:
        return []
    first = not_serveable[0]
    return [f"{len(not_serveable)} ingested file(s) will not be serveable as sent (the serving "
            f"graph refuses them; clients must send PNG or JPEG), e.g. {first['path']}: "
            f"{first['reason']}; all are listed under not_serveable in the report"]


def write(summary: Dict[str, Any], examples_uri: str) -> str:
    """Write the report beside the split folders of the Examples artifact."""
    path = os.path.join(examples_uri, REPORT_FILE)
    with tf.io.gfile.GFile(path, "w") as fh:
        fh.write(json.dumps(summary, indent=2, ensure_ascii=False))
    return path


def read(examples_uri: str) -> Dict[str, Any]:
    """Read the report of an Examples artifact."""
    with tf.io.gfile.GFile(os.path.join(examples_uri, REPORT_FILE)) as fh:
        return json.loads(fh.read())


def check(summary: Dict[str, Any]) -> None:
    """Stop the run when counts do not reconcile or fewer than two classes are usable."""
    accounted = summary["ingested"] + len(summary["rejected"]) + len(summary["ignored"])
    if accounted != summary["found"]:
        raise DatasetError(f"ingestion counts do not reconcile: found {summary['found']} but "
                           f"ingested + rejected + ignored = {accounted}")
    per_class: Dict[str, int] = {}
    for entry in summary["splits"].values():
        for label, count in entry["per_class"].items():
            per_class[label] = per_class.get(label, 0) + count
    check_classes(per_class)
    train = summary["splits"].get("train", {}).get("total", 0)
    evaluation = summary["splits"].get("eval", {}).get("total", 0)
    if not train or not evaluation:
        raise DatasetError(f"need images in both train and eval splits; got train={train}, "
                           f"eval={evaluation}. Add images or change data.split_buckets.")
