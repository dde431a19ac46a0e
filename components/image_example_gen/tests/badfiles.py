"""Build a class-folder image tree laced with every kind of bad file, for ingestion tests.

``make_bad_tree`` is shared by the scan/decode tests and by the ExampleGen and end-to-end
tests; its return value lists what a correct ingestion must ingest, reject and ignore.
"""
from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path
from typing import Dict, Union

import numpy as np
from PIL import Image

CLASSES = ("cats", "dogs")
EMPTY_CLASS = "birds"
UNICODE_NAME = "猫_café_ü.png"


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    """One PNG chunk: length, type, payload and the CRC over type + payload."""
    crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose valid IHDR claims ``width`` x ``height`` grey pixels but carries one row."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" + b"\x00" * min(width, 64))
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat)
            + png_chunk(b"IEND", b""))


def pattern(label_index: int, seed: int, size: int) -> np.ndarray:
    """A synthetic RGB image whose stripe direction and hue depend on the class, with coarse
    blotches from the seed, so two seeds give perceptually different images (not near-duplicates)."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 255, size, dtype=np.float64)
    horizontal = label_index % 2 == 0
    stripes = np.tile(ramp, (size, 1)) if horizontal else np.tile(ramp[:, None], (1, size))
    cell = -(-size // 4)
    blotches = np.kron(rng.integers(0, 160, size=(4, 4)), np.ones((cell, cell)))[:size, :size]
    stripes = 0.5 * stripes + blotches
    noise = rng.integers(0, 24, size=(size, size, 3))
    base = np.stack([stripes, stripes * 0.5, 255 - stripes], axis=-1)
    if label_index % 2:
        base = base[..., ::-1]
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def _save(path: Path, pixels: np.ndarray) -> None:
    fmt = "JPEG" if path.suffix.lower() in (".jpg", ".jpeg") else "PNG"
    extra = {"quality": 95} if fmt == "JPEG" else {}
    Image.fromarray(pixels).save(path, format=fmt, **extra)


def _encoded_png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def _good_images(root: Path, good_per_class: int, size: int, seed: int) -> Dict[str, str]:
    """Write the good images (PNG for cats, JPEG for dogs, one nested, one unicode name)."""
    labels: Dict[str, str] = {}
    for index, label in enumerate(CLASSES):
        ext = ".png" if index == 0 else ".jpg"
        for number in range(good_per_class):
            rel = f"{label}/{label}_{number:03d}{ext}"
            _save(root / rel, pattern(index, seed=seed + 100 * index + number, size=size))
            labels[rel] = label
    nested = f"{CLASSES[1]}/indoor/nested_000.png"
    (root / nested).parent.mkdir(parents=True, exist_ok=True)
    _save(root / nested, pattern(1, seed=seed + 999, size=size))
    labels[nested] = CLASSES[1]
    unicode_rel = f"{CLASSES[0]}/{UNICODE_NAME}"
    _save(root / unicode_rel, pattern(0, seed=seed + 998, size=size))
    labels[unicode_rel] = CLASSES[0]
    return labels


def _bad_files(root: Path, size: int) -> Dict[str, str]:
    """Write one file per rejection kind; return {rel_path: reason substring}."""
    cats, dogs = CLASSES
    whole = _encoded_png(pattern(0, seed=7, size=size))
    files = {
        f"{cats}/zero_bytes.png": (b"", "zero-byte"),
        f"{cats}/truncated.png": (whole[: len(whole) // 2], "truncated"),
        f"{dogs}/not_really.jpg": (b"these are notes, not a JPEG\n", "not an image"),
        f"{dogs}/bomb.png": (png_header_only(100_000, 100_000), "decompression bomb"),
    }
    for rel, (content, _) in files.items():
        (root / rel).write_bytes(content)
    os.symlink("..", root / cats / "loop")
    os.symlink("no_such_target.jpg", root / dogs / "dangling.jpg")
    reasons = {rel: reason for rel, (_, reason) in files.items()}
    reasons[f"{cats}/loop"] = "symlink loop"
    reasons[f"{dogs}/dangling.jpg"] = "broken symlink"
    return reasons


def _ignored_files(root: Path, size: int) -> list:
    """Write strays: README and .DS_Store in class folders, an image and a note in the root."""
    cats, dogs = CLASSES
    (root / cats / "README.txt").write_text("Photos of cats.\n", encoding="utf-8")
    (root / dogs / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1" + b"\x00" * 16)
    _save(root / "loose_in_root.png", pattern(0, seed=5, size=size))
    (root / "notes.csv").write_text("not,a,manifest\n", encoding="utf-8")
    return [f"{cats}/README.txt", f"{dogs}/.DS_Store", "loose_in_root.png", "notes.csv"]


def make_bad_tree(root: Union[Path, str], good_per_class: int = 4, size: int = 16,
                  seed: int = 0) -> dict:
    """Create the laced tree under ``root`` (absent or empty) and describe it; trees made with
    ``seed`` values 10,000 apart share no image.

    Returns ``{"good": n_good, "rejected": {rel_path: reason_substring},
    "ignored": [rel_paths], "empty_folders": [rel_paths], "labels": {good rel_path: class}}``.
    Rejections come partly from the scan (symlink loop, broken symlink) and partly from
    decoding (zero-byte, truncated, not an image, decompression bomb).
    """
    root = Path(root)
    for label in (*CLASSES, EMPTY_CLASS):
        (root / label).mkdir(parents=True, exist_ok=True)
    labels = _good_images(root, good_per_class, size, seed)
    return {
        "good": len(labels),
        "rejected": _bad_files(root, size),
        "ignored": _ignored_files(root, size),
        "empty_folders": [EMPTY_CLASS],
        "labels": labels,
    }
