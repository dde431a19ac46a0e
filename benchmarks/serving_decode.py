"""Before/after of issue 15 item 1: accuracy through serving (raw files to ``serving_default``)
vs through the pipeline (the ingested examples to ``serving_examples``, what TFMA scores).

The bundled Fashion-MNIST sample (1,500 real images) is re-encoded as a user's files would
arrive: even-numbered images as RGB JPEGs whose pixels are stored rotated with an EXIF
orientation (2-8) that puts them upright, odd-numbered ones as PNGs of the garment on a
transparent background (transparent pixels store black). ``lensflow run`` (2 epochs) trains on
that folder; then every file of the test split is sent as-is to the pushed ``serving_default``.

    .venv/bin/python benchmarks/serving_decode.py --out /tmp/decode-bench

Run it from a checkout to measure that checkout's code (e.g. ``git worktree add /tmp/before
105ac0f`` and run the same script there with ``PYTHONPATH=/tmp/before``).
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "data" / "sample" / "fashion_mnist"
_STORE = {  # orientation -> how the camera stored an upright image (inverse of the EXIF fix)
    2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90, 7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_270}


def reencode(src: Path, dst: Path) -> Counter:
    """Write the user-style copy of the sample under ``dst``; returns counts per kind."""
    kinds: Counter = Counter()
    for index, path in enumerate(sorted(src.glob("*/*.png"))):
        grey = Image.open(path).convert("L")
        out = dst / path.parent.name
        out.mkdir(parents=True, exist_ok=True)
        if index % 2 == 0:
            orientation = 2 + (index // 2) % 7
            exif = Image.Exif()
            exif[0x0112] = orientation
            stored = grey.convert("RGB").transpose(_STORE[orientation])
            stored.save(out / f"{path.stem}.jpg", "JPEG", quality=95, exif=exif.tobytes())
            kinds["jpeg_exif"] += 1
        else:
            values = np.asarray(grey)
            alpha = np.clip(values.astype(np.int32) * 4, 0, 255).astype(np.uint8)
            rgba = np.dstack([values, values, values, alpha])
            Image.fromarray(rgba, "RGBA").save(out / f"{path.stem}.png")
            kinds["png_alpha"] += 1
    return kinds


def evaluate(summary: dict, data: Path) -> dict:
    """Accuracy of the pushed model through serving and through the pipeline on the test split."""
    import tensorflow as tf

    from lensflow.components.transform import features

    model = tf.saved_model.load(summary["pushed_model_dir"])
    serve, examples_fn = model.signatures["serving_default"], model.signatures["serving_examples"]
    files = glob.glob(os.path.join(summary["examples_uri"], "Split-test", "*.gz"))
    rows = []
    for record in tf.data.TFRecordDataset(files, compression_type="GZIP"):
        example = tf.train.Example.FromString(record.numpy())
        feat = example.features.feature
        rows.append((feat[features.PATH_KEY].bytes_list.value[0].decode(),
                     feat[features.LABEL_KEY].bytes_list.value[0].decode(), record.numpy()))
    served, pipeline = [], []
    for start in range(0, len(rows), 64):
        chunk = rows[start:start + 64]
        raw = [(data / rel).read_bytes() for rel, _, _ in chunk]
        out = serve(**{features.SERVING_IMAGES_INPUT: tf.constant(raw)})
        served += [v.decode() for v in out[features.CLASS_NAMES].numpy()]
        out = examples_fn(**{features.SERVING_EXAMPLES_INPUT: tf.constant([r for _, _, r in chunk])})
        pipeline += [v.decode() for v in out[features.CLASS_NAMES].numpy()]
    result = {"test_images": len(rows), "tfma_accuracy": summary["metrics"]["accuracy"]}
    for kind, suffix in (("all", ""), ("jpeg_exif", ".jpg"), ("png_alpha", ".png")):
        idx = [i for i, (rel, _, _) in enumerate(rows) if rel.endswith(suffix)]
        labels = [rows[i][1] for i in idx]
        result[kind] = {
            "n": len(idx),
            "pipeline_accuracy": float(np.mean([pipeline[i] == y for i, y in zip(idx, labels)])),
            "serving_accuracy": float(np.mean([served[i] == y for i, y in zip(idx, labels)])),
            "agreement": float(np.mean([served[i] == pipeline[i] for i in idx]))}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="work folder (data, lensflow home)")
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    out = Path(args.out)
    data = out / "data"
    if not data.exists():
        print("re-encoded:", dict(reencode(SAMPLE, data)), flush=True)
    home = out / "home"
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "PYTHONHASHSEED": "0"}
    summary_file = out / "summary.json"
    subprocess.run([sys.executable, "-m", "lensflow.pipeline.cli", "run", "--data", str(data),
                    "--home", str(home), "--epochs", str(args.epochs), "--min-accuracy", "0",
                    "--summary-json", str(summary_file)], check=True, env=env, cwd=REPO)
    result = evaluate(json.loads(summary_file.read_text()), data)
    result["code"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO,
                                    capture_output=True, text=True).stdout.strip()
    text = json.dumps(result, indent=2)
    print(text)
    (out / "result.json").write_text(text)


if __name__ == "__main__":
    main()
