"""Write Fashion-MNIST (Debian's ``dataset-fashion-mnist`` idx files) as an image folder tree.

The official train and test splits stay apart: ``OUT/train/<class>/*.png`` and
``OUT/test/<class>/*.png``, which ImageExampleGen reads as a pre-split tree.
"""
from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path
from typing import Dict, Optional

import numpy as np
from PIL import Image

DEFAULT_IDX_DIR = "/usr/share/datasets/fashion-mnist"
CLASS_NAMES = ("t-shirt_top", "trouser", "pullover", "dress", "coat",
               "sandal", "shirt", "sneaker", "bag", "ankle_boot")
ATTRIBUTION = (
    "Fashion-MNIST, Copyright (c) 2017 Zalando SE, MIT License.\n"
    "https://github.com/zalandoresearch/fashion-mnist\n"
    "Images taken from Debian's dataset-fashion-mnist package.\n")
_FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
          "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}


class DatasetMissing(FileNotFoundError):
    """The idx files are not on this machine."""


def _read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as fh:
        data = fh.read()
    zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype_code != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte idx file")
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_split(split: str, idx_dir: str = DEFAULT_IDX_DIR):
    """Return (images [N,28,28] uint8, labels [N] uint8) of ``train`` or ``test``."""
    root = Path(idx_dir)
    images_file, labels_file = (root / name for name in _FILES[split])
    for path in (images_file, labels_file):
        if not path.exists():
            raise DatasetMissing(
                f"{path} not found. Install Debian's package with "
                f"'apt-get install dataset-fashion-mnist' or pass the folder holding the idx files.")
    return _read_idx(images_file), _read_idx(labels_file)


def export(out_dir: str, idx_dir: str = DEFAULT_IDX_DIR, per_class: Optional[int] = None,
           splits=("train", "test"), flat: bool = False) -> Dict[str, Dict[str, int]]:
    """Write PNGs class by class; ``per_class`` keeps the first N of each class per split.

    ``flat`` writes ``OUT/<class>/`` (one split, for a hash-split sample) instead of
    ``OUT/<split>/<class>/``. Returns counts per split and class.
    """
    out = Path(out_dir)
    counts: Dict[str, Dict[str, int]] = {}
    for split in splits:
        images, labels = load_split(split, idx_dir)
        split_counts = {name: 0 for name in CLASS_NAMES}
        for index, (pixels, label) in enumerate(zip(images, labels)):
            name = CLASS_NAMES[int(label)]
            if per_class is not None and split_counts[name] >= per_class:
                continue
            folder = out / name if flat else out / split / name
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels, mode="L").save(folder / f"{split}_{index:05d}.png",
                                                   optimize=True)
            split_counts[name] += 1
        counts[split] = split_counts
    os.makedirs(out, exist_ok=True)
    (out / "ATTRIBUTION.txt").write_text(ATTRIBUTION, encoding="utf-8")
    return counts
