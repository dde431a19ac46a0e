"""Fuzz figure of docs/RELIABILITY.md: mutated real images through ingestion and serving.

    .venv/bin/python benchmarks/fuzz_inputs.py --count 3000 --seed 18 --out /tmp/fuzz

Every mutant (``fuzz_mutate.py``: truncation, bit flips, header fields, huge declared dimensions,
zero length, garbage) goes through (a) ingestion's per-file decode, ``load_image``, and (b) the
served decode graph (``--model DIR``: a pushed model's ``serving_default`` instead), each path in
child processes of ``--batch`` inputs, so a segfault or abort is counted against the one input
that caused it and the run goes on. Writes ``fuzz.json`` and ``fuzz.md`` to ``--out``, keeps each
mutant that crashed, hung or raised an unexpected error under ``--out/findings/``, and exits 1
when any did or the counts do not reconcile.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from typing import Dict, List

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import fuzz_mutate  # noqa: E402
from lensflow.pipeline.config import DataConfig  # noqa: E402

WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fuzz_worker.py")
PATHS = ("ingestion", "serving")
OUTCOMES = ("accepted", "rejected", "error", "crashed", "hung")
JPEG_TOLERANCE = 1   # grey levels a JPEG's served pixels may differ (libjpeg IDCT rounding)


def _args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=3000, help="mutants to try")
    parser.add_argument("--seed", type=int, default=18, help="random seed of the mutations")
    parser.add_argument("--out", required=True, help="folder for inputs, results and the report")
    parser.add_argument("--model", default="", help="a pushed model directory: fuzz its "
                        "serving_default instead of the decode graph alone")
    parser.add_argument("--batch", type=int, default=500, help="inputs per child process")
    parser.add_argument("--hang-seconds", type=float, default=120.0,
                        help="an input taking longer than this is killed and counted as hung")
    parser.add_argument("--slow-seconds", type=float, default=2.0,
                        help="flag a decode taking longer than this (resource blowup)")
    parser.add_argument("--big-mb", type=float, default=512.0,
                        help="flag a decode whose peak memory grows by more than this")
    parser.add_argument("--max-pixels", type=int, default=DataConfig.max_image_pixels)
    parser.add_argument("--max-bytes", type=int, default=DataConfig.max_file_bytes)
    return parser.parse_args(argv)


def write_inputs(args) -> str:
    """Write every mutant under ``--out/inputs`` and the manifest the workers read."""
    inputs_dir = os.path.join(args.out, "inputs")
    ingested_dir = os.path.join(args.out, "ingested")
    for folder in (inputs_dir, ingested_dir):
        shutil.rmtree(folder, ignore_errors=True)
        os.makedirs(folder)
    items = []
    for index, mutant in enumerate(fuzz_mutate.mutants(args.count, args.seed)):
        path = os.path.join(inputs_dir, mutant["name"])
        with open(path, "wb") as handle:
            handle.write(mutant.pop("data"))
        items.append({"id": index, "path": path, **mutant})
    manifest = os.path.join(args.out, "manifest.json")
    with open(manifest, "w", encoding="utf-8") as handle:
        json.dump({"inputs": items, "max_pixels": args.max_pixels, "max_bytes": args.max_bytes,
                   "ingested_dir": ingested_dir, "model": args.model}, handle)
    return manifest


def _done(results: str) -> int:
    if not os.path.exists(results):
        return 0
    with open(results, encoding="utf-8") as handle:
        return sum(1 for line in handle if line.endswith("\n"))


def run_path(path: str, manifest: str, count: int, args) -> List[dict]:
    """All inputs through one path, ``--batch`` per child; a child that dies or stalls costs
    exactly the input it was on (recorded as crashed or hung) and a new child takes the rest."""
    results = os.path.join(args.out, f"{path}.jsonl")
    if os.path.exists(results):
        os.remove(results)
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "PYTHONHASHSEED": "0"}
    position = 0
    while position < count:
        stop = min(count, position + args.batch)
        child = subprocess.Popen([sys.executable, WORKER, path, manifest, str(position),
                                  str(stop), results], env=env, stderr=subprocess.PIPE,
                                 start_new_session=True)
        seen, last_progress, startup = position, time.monotonic(), 600.0
        while child.poll() is None:
            time.sleep(0.2)
            now_done = _done(results)
            if now_done != seen:
                seen, last_progress, startup = now_done, time.monotonic(), 0.0
            elif time.monotonic() - last_progress > args.hang_seconds + startup:
                os.killpg(child.pid, signal.SIGKILL)
                child.wait()
                break
        stderr = child.stderr.read().decode(errors="replace")
        child.stderr.close()
        position = _done(results)
        if position < stop:   # the child died (or was killed) on input ``position``
            outcome = "hung" if child.returncode == -signal.SIGKILL else "crashed"
            reason = _exit_reason(child.returncode, stderr)
            with open(results, "a", encoding="utf-8") as handle:
                handle.write(json.dumps({"id": position, "outcome": outcome,
                                         "reason": reason}) + "\n")
            position += 1
    with open(results, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def _exit_reason(code: int, stderr: str) -> str:
    if code is not None and code < 0:
        return f"killed by signal {signal.Signals(-code).name}"
    tail = stderr.strip().splitlines()[-1:] or ["(no output)"]
    return f"exit code {code}: {tail[0][:200]}"


def reason_group(reason: str) -> str:
    """A reason without its numbers and paths, so one kind of rejection is one row."""
    text = re.sub(r"b'(?:[^'\\]|\\.)*'", "b'...'", reason.strip())
    text = re.sub(r"\d+", "N", text)
    text = re.sub(r"'[^']*/[^']*'", "'PATH'", text)
    return text[:150]


def tally(records: List[dict], count: int) -> dict:
    """Counts per outcome, rejections by reason, and whether they add up to the inputs tried."""
    by_id = {}
    for record in records:
        by_id.setdefault(record["id"], record)
    counts = Counter(record["outcome"] for record in by_id.values())
    reasons = Counter(reason_group(r["reason"]) for r in by_id.values()
                      if r["outcome"] == "rejected")
    return {"tried": count, **{outcome: counts.get(outcome, 0) for outcome in OUTCOMES},
            "results_recorded": len(records), "distinct_inputs": len(by_id),
            "reconciled": (len(records) == len(by_id) == count
                           and sum(counts.values()) == count
                           and set(by_id) == set(range(count))),
            "rejected_by_reason": dict(reasons.most_common())}


def parity(items: List[dict], ingestion: Dict[int, dict], serving: Dict[int, dict]) -> dict:
    """Files one path accepts and the other refuses, and accepted-by-both files whose served
    pixels differ from the ingested ones."""
    out = {"both_accepted": 0, "both_rejected": 0, "ingested_not_served_reported": [],
           "ingested_not_served_silent": [], "served_not_ingested": [], "pixel_mismatch": [],
           "pixels_compared": 0}
    for item in items:
        ing, srv = ingestion.get(item["id"], {}), serving.get(item["id"], {})
        a, b = ing.get("outcome") == "accepted", srv.get("outcome") == "accepted"
        brief = {"input": item["name"], "seed_file": item["seed_file"], "detail": item["detail"]}
        if a and b:
            out["both_accepted"] += 1
            diff = srv.get("pixel_diff")
            if diff is not None:
                out["pixels_compared"] += 1
                limit = JPEG_TOLERANCE if item["format"] == "JPEG" else 0
                if not isinstance(diff, int) or diff > limit:
                    out["pixel_mismatch"].append({**brief, "difference": diff})
        elif a and srv.get("outcome") == "rejected":
            key = ("ingested_not_served_reported" if srv.get("header_refusal")
                   else "ingested_not_served_silent")
            out[key].append({**brief, "served_reason": srv["reason"]})
        elif b and ing.get("outcome") == "rejected":
            out["served_not_ingested"].append({**brief, "ingestion_reason": ing["reason"]})
        elif ing.get("outcome") == "rejected" and srv.get("outcome") == "rejected":
            out["both_rejected"] += 1
    return out


def blowups(items: List[dict], records: Dict[int, dict], args) -> dict:
    """Inputs whose decode took more than ``--slow-seconds`` or grew memory by ``--big-mb``."""
    timed = [r for r in records.values() if "seconds" in r]
    flagged = [{"input": items[r["id"]]["name"], "detail": items[r["id"]]["detail"],
                "outcome": r["outcome"], "seconds": r["seconds"], "peak_mb": r["peak_mb"]}
               for r in timed if r["seconds"] > args.slow_seconds or r["peak_mb"] > args.big_mb]
    return {"flagged": flagged,
            "max_seconds": max((r["seconds"] for r in timed), default=0.0),
            "max_peak_mb": max((r["peak_mb"] for r in timed), default=0.0),
            "total_seconds": round(sum(r["seconds"] for r in timed), 1)}


def _findings(args, items, outcomes) -> List[str]:
    """Copy each mutant that crashed, hung or raised an unexpected error to ``findings/``."""
    folder = os.path.join(args.out, "findings")
    shutil.rmtree(folder, ignore_errors=True)
    kept = []
    for path, records in outcomes.items():
        for record in records.values():
            if record["outcome"] in ("error", "crashed", "hung"):
                os.makedirs(folder, exist_ok=True)
                item = items[record["id"]]
                shutil.copy(item["path"], os.path.join(folder, f"{path}-{item['name']}"))
                kept.append(f"{path}: {item['name']} ({item['seed_file']}, {item['detail']}): "
                            f"{record['outcome']}: {record['reason']}")
    return kept


def main(argv=None) -> dict:
    args = _args(argv)
    os.makedirs(args.out, exist_ok=True)
    started = time.time()
    manifest = write_inputs(args)
    with open(manifest, encoding="utf-8") as handle:
        items = json.load(handle)["inputs"]
    outcomes, report = {}, {"command": " ".join([os.path.relpath(sys.executable),
                                                 *sys.argv]) if argv is None else argv,
                            "seed": args.seed, "count": args.count, "model": args.model or None,
                            "machine": _machine(), "ops": dict(Counter(i["op"] for i in items)),
                            "formats": dict(Counter(i["format"] for i in items)),
                            "seed_files": len({i["seed_file"] for i in items})}
    for path in PATHS:
        path_started = time.time()
        records = run_path(path, manifest, len(items), args)
        outcomes[path] = {r["id"]: r for r in records}
        report[path] = {**tally(records, len(items)),
                        "resources": blowups(items, outcomes[path], args),
                        "wall_seconds": round(time.time() - path_started, 1)}
    report["parity"] = parity(items, outcomes["ingestion"], outcomes["serving"])
    report["findings"] = _findings(args, items, outcomes)
    report["wall_seconds"] = round(time.time() - started, 1)
    report["ok"] = (not report["findings"]
                    and all(report[p]["reconciled"] for p in PATHS))
    with open(os.path.join(args.out, "fuzz.json"), "w", encoding="utf-8") as handle:
        json.dump(report, handle, indent=2)
    markdown = render(report)
    with open(os.path.join(args.out, "fuzz.md"), "w", encoding="utf-8") as handle:
        handle.write(markdown)
    print(markdown)
    return report


def _machine() -> dict:
    model = ""
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as handle:
            model = next((line.split(":", 1)[1].strip() for line in handle
                          if line.startswith("model name")), "")
    return {"cpus": os.cpu_count(), "cpu": model, "python": platform.python_version(),
            "system": platform.platform()}


def render(report: dict) -> str:
    """The tables of docs/RELIABILITY.md."""
    lines = [f"Inputs: {report['count']} (seed {report['seed']}; from {report['seed_files']} "
             f"real seed files; formats {report['formats']}; operations {report['ops']})", "",
             "| path | tried | accepted | rejected (reason) | unexpected error | crashed | hung "
             "| reconciled | slowest s | max peak MB | wall s |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for path in PATHS:
        t = report[path]
        res = t["resources"]
        lines.append(f"| {path} | {t['tried']} | {t['accepted']} | {t['rejected']} | {t['error']} "
                     f"| {t['crashed']} | {t['hung']} | {'yes' if t['reconciled'] else 'NO'} "
                     f"| {res['max_seconds']:.2f} | {res['max_peak_mb']:.0f} "
                     f"| {t['wall_seconds']:.0f} |")
    p = report["parity"]
    lines += ["", "| parity | inputs |", "|---|---|",
              f"| accepted by both | {p['both_accepted']} |",
              f"| rejected by both | {p['both_rejected']} |",
              f"| ingested, refused by serving, flagged by ingestion's not-serveable report | "
              f"{len(p['ingested_not_served_reported'])} |",
              f"| ingested, refused by serving, not flagged | "
              f"{len(p['ingested_not_served_silent'])} |",
              f"| served, rejected by ingestion | {len(p['served_not_ingested'])} |",
              f"| accepted by both, pixels compared / differing | {p['pixels_compared']} / "
              f"{len(p['pixel_mismatch'])} |"]
    for path in PATHS:
        lines += ["", f"{path}: rejections by reason (numbers shown as N)", "",
                  "| count | reason |", "|---|---|"]
        lines += [f"| {n} | {reason.replace('|', '/')} |"
                  for reason, n in report[path]["rejected_by_reason"].items()]
    for path in PATHS:
        flagged = report[path]["resources"]["flagged"]
        if flagged:
            lines += ["", f"{path}: decodes over the time or memory flag", ""]
            lines += [f"- {f['input']} ({f['detail']}): {f['outcome']}, {f['seconds']} s, "
                      f"{f['peak_mb']} MB" for f in flagged[:20]]
    if report["findings"]:
        lines += ["", "Findings (crashes, hangs, unexpected errors):", ""]
        lines += [f"- {finding}" for finding in report["findings"]]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(0 if main()["ok"] else 1)
