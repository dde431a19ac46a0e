"""Memory at 224-px RGB: peak RSS per pipeline stage and artifact sizes at several dataset sizes.

``make bench ARGS="memory --sizes 2000 10000 --out /tmp/lensflow-mem"`` (or
``python benchmarks/bench_memory.py ...``). For each size it generates a 224-px RGB JPEG
tree from real photographs (scikit-image's bundled photos, one class per photo: random crops,
flips and colour jitter), runs ``lensflow run --image-size 224 --color-mode rgb --epochs 1`` in a
fresh home as a child process, samples the resident memory of that process and all its
descendants from /proc every ``--interval`` seconds, attributes each sample to the component
LocalDagRunner reports as running (its progress lines), and sizes every output artifact.
Writes ``memory.json`` and ``memory.md`` to ``--out``. Not part of the test suite.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from typing import Dict, List

import numpy as np
from PIL import Image, ImageEnhance

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field",
          "immunohistochemistry", "retina")
SIZE = 224
_PAGE = os.sysconf("SC_PAGE_SIZE")


def generate(root: str, count: int, seed: int = 0) -> Dict[str, int]:
    """``count`` JPEGs, ``root/<photo>/<i>.jpg``, spread evenly over the photos: each a random
    crop (35-100 % of the short side, aspect 0.8-1.25) resized to 224 px, flipped half the time,
    brightness / contrast / colour jittered by up to 25 %."""
    from skimage import data as photos

    rng = np.random.default_rng(seed)
    counts = {}
    for index, name in enumerate(PHOTOS):
        source = Image.fromarray(getattr(photos, name)()).convert("RGB")
        width, height = source.size
        folder = os.path.join(root, name)
        os.makedirs(folder, exist_ok=True)
        n = count // len(PHOTOS) + (1 if index < count % len(PHOTOS) else 0)
        for i in range(n):
            side = min(width, height) * rng.uniform(0.35, 1.0)
            aspect = rng.uniform(0.8, 1.25)
            w, h = min(width, side * aspect), min(height, side / aspect)
            x0, y0 = rng.uniform(0, width - w), rng.uniform(0, height - h)
            image = source.crop((int(x0), int(y0), int(x0 + w), int(y0 + h))).resize(
                (SIZE, SIZE), Image.BILINEAR)
            if rng.random() < 0.5:
                image = image.transpose(Image.FLIP_LEFT_RIGHT)
            for enhance in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
                image = enhance(image).enhance(rng.uniform(0.75, 1.25))
            image.save(os.path.join(folder, f"{i:06d}.jpg"), quality=90)
        counts[name] = n
    return counts


def _tree_rss(pid: int) -> int:
    """Resident bytes of ``pid`` and every descendant (from /proc)."""
    children: Dict[int, List[int]] = {}
    rss: Dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
        rss[int(entry)] = int(fields[21]) * _PAGE
    total, stack = 0, [pid]
    while stack:
        current = stack.pop()
        total += rss.get(current, 0)
        stack.extend(children.get(current, []))
    return total


def run_pipeline(data: str, home: str, extra: List[str], interval: float) -> Dict:
    """One ``lensflow run``; per component: seconds and peak RSS of the process tree."""
    command = [sys.executable, "-m", "lensflow.pipeline.cli", "run", "--home", home,
               "--data", data, "--image-size", str(SIZE), "--color-mode", "rgb",
               "--epochs", "1", *extra]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, errors="replace")
    state = {"component": "(start-up)"}
    peaks: Dict[str, int] = {}
    seconds: Dict[str, float] = {}
    log: List[str] = []

    def read():
        for line in process.stdout:
            log.append(line.rstrip())
            text = line.strip()
            if text.startswith("▶ "):
                state["component"] = text[2:].split()[0]
            elif text.startswith("✓ "):
                name = text[2:].split()[0]
                seconds[name] = float(text.rsplit("(", 1)[1].rstrip("s)"))
                state["component"] = "(between components)"

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    start = time.time()
    while process.poll() is None:
        rss = _tree_rss(process.pid)
        name = state["component"]
        peaks[name] = max(peaks.get(name, 0), rss)
        time.sleep(interval)
    reader.join(timeout=10)
    return {"command": command, "returncode": process.returncode,
            "wall_seconds": time.time() - start, "peak_rss": peaks, "seconds": seconds,
            "log_tail": log[-40:]}


def _du(path: str) -> int:
    total = 0
    for folder, _, files in os.walk(path):
        total += sum(os.path.getsize(os.path.join(folder, f)) for f in files)
    return total


def artifact_sizes(home: str) -> Dict[str, int]:
    """Bytes of each ``<component>/<output>`` under the run's pipeline root."""
    sizes = {}
    roots = os.path.join(home, "pipelines")
    for pipeline in os.listdir(roots):
        root = os.path.join(roots, pipeline)
        for component in sorted(os.listdir(root)):
            folder = os.path.join(root, component)
            if not os.path.isdir(folder) or component.startswith("."):
                continue
            for output in sorted(os.listdir(folder)):
                if os.path.isdir(os.path.join(folder, output)) and output != ".system":
                    sizes[f"{component}/{output}"] = _du(os.path.join(folder, output))
    return sizes


def _markdown(results: List[Dict]) -> str:
    sizes = [r["images"] for r in results]
    components = []
    for r in results:
        components += [c for c in r["run"]["peak_rss"] if c not in components]
    mb = 2 ** 20
    lines = ["| stage | " + " | ".join(f"peak RSS, {n:,} images (MB)" for n in sizes) +
             " | " + " | ".join(f"time, {n:,} (s)" for n in sizes) + " |",
             "|---|" + "---:|" * (2 * len(sizes))]
    for c in components:
        lines.append(f"| {c} | " + " | ".join(
            f"{r['run']['peak_rss'].get(c, 0) / mb:,.0f}" for r in results) + " | " + " | ".join(
            f"{r['run']['seconds'].get(c, float('nan')):.0f}" for r in results) + " |")
    lines.append("| **whole run (max)** | " + " | ".join(
        f"**{max(r['run']['peak_rss'].values()) / mb:,.0f}**" for r in results) + " | " +
        " | ".join(f"{r['run']['wall_seconds']:.0f}" for r in results) + " |")
    artifacts = []
    for r in results:
        artifacts += [a for a in r["artifacts"] if a not in artifacts]
    lines += ["", "| artifact | " + " | ".join(f"{n:,} images (MB)" for n in sizes) + " |",
              "|---|" + "---:|" * len(sizes)]
    for a in artifacts:
        lines.append(f"| {a} | " + " | ".join(
            f"{r['artifacts'].get(a, 0) / mb:,.1f}" for r in results) + " |")
    lines += ["", "| | " + " | ".join(f"{n:,}" for n in sizes) + " |",
              "|---|" + "---:|" * len(sizes),
              "| JPEG tree (MB) | " + " | ".join(f"{r['tree_bytes'] / mb:,.1f}" for r in results)
              + " |",
              "| uint8 pixels of the ingested images (MB) | " + " | ".join(
                  f"{r['examples'] * SIZE * SIZE * 3 / mb:,.1f}" for r in results) + " |",
              "| transformed examples / uint8 pixels | " + " | ".join(
                  f"{r['transformed_ratio']:.3f}" for r in results) + " |"]
    return "\n".join(lines) + "\n"


def _examples(home: str) -> int:
    """Examples ImageExampleGen wrote (all splits), read back from its statistics of counts."""
    import tensorflow as tf

    root = os.path.join(home, "pipelines")
    pattern = os.path.join(root, "*", "ImageExampleGen", "examples", "*", "Split-*", "*")
    files = tf.io.gfile.glob(pattern)
    return sum(1 for _ in tf.data.TFRecordDataset(files, compression_type="GZIP"))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[5000, 25000])
    parser.add_argument("--out", default="/tmp/lensflow-mem")
    parser.add_argument("--interval", type=float, default=0.5)
    parser.add_argument("--set", action="append", default=[], dest="sets",
                        help="extra --set KEY=VALUE for lensflow run (repeatable)")
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    extra = [a for kv in args.sets for a in ("--set", kv)]
    results = []
    for count in args.sizes:
        print(f"{count} images ...", flush=True)
        data = os.path.join(args.out, f"images-{count}")
        if not os.path.isdir(data):
            generate(data, count)
        home = os.path.join(args.out, f"home-{count}")
        run = run_pipeline(data, home, extra, args.interval)
        artifacts = artifact_sizes(home)
        examples = _examples(home)
        transformed = sum(v for k, v in artifacts.items()
                          if k.startswith("Transform/transformed_examples"))
        results.append({"images": count, "examples": examples, "run": run,
                        "artifacts": artifacts, "tree_bytes": _du(data),
                        "transformed_ratio": transformed / max(1, examples * SIZE * SIZE * 3)})
        with open(os.path.join(args.out, "memory.json"), "w") as fh:
            json.dump(results, fh, indent=1)
        with open(os.path.join(args.out, "memory.md"), "w") as fh:
            fh.write(_markdown(results))
        print(_markdown(results), flush=True)
        if run["returncode"] not in (0, 3, 4, 5):
            print("\n".join(run["log_tail"]), file=sys.stderr)


if __name__ == "__main__":
    main()
