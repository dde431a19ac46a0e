"""``lensflow compare --subset N``: a small, balanced training set judged on the full held-out split.

The article's "small dataset" case. The held-out split is never sampled:

* a pre-split tree (or a manifest with a ``split`` column) keeps its ``test`` split whole (its
  ``eval`` split when it has no ``test``);
* class folders hold out exactly the images ``lensflow run`` would put in ``test``: the same
  content-hash buckets (``executor.assign_split`` on the file's SHA-256) as ingestion.

Everything else is the pool. From it, a seeded draw balanced per class takes N training images,
then a disjoint balanced draw takes the ``eval`` images the Trainer validates on
(N x eval/train buckets, at least one per class). The result is a manifest CSV
(``path,label,split``; see ``components/image_example_gen/scan.py``) with the held-out images under
``test``, so the Evaluator judges every variant on the same full held-out split. It gets a folder
of its own: ExampleGen fingerprints the top level of the manifest's folder for its cache key, so
anything else written beside it (pushed models, reports) would re-run ingestion.
"""
from __future__ import annotations

import csv
import hashlib
import os
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from lensflow.components.image_example_gen.scan import Candidate, DatasetError, ScanResult

MANIFEST_NAME = "subset_manifest.csv"
MANIFEST_FOLDER = "subset"


@dataclass
class Subset:
    """Rows ``(path, label, split)`` of the manifest and where the held-out images come from."""

    rows: List[Tuple[str, str, str]]
    held_out_source: str
    requested: int
    warnings: List[str] = field(default_factory=list)

    def counts(self) -> Dict[str, Dict[str, int]]:
        """``{split: {label: images}}`` as written to the manifest."""
        out: Dict[str, Dict[str, int]] = {}
        for _, label, split in self.rows:
            out.setdefault(split, Counter())[label] += 1
        return {split: dict(sorted(per.items())) for split, per in sorted(out.items())}

    def totals(self) -> Dict[str, int]:
        return {split: sum(per.values()) for split, per in self.counts().items()}


def file_sha256(path: str) -> str:
    """SHA-256 of the file's bytes: the content hash ingestion splits unsplit data by."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _hash_split(buckets: Dict[str, int]) -> Callable[[Candidate], str]:
    """The split ingestion gives an unsplit candidate (unreadable files count as pool)."""
    from lensflow.components.image_example_gen.executor import assign_split

    def split_of(candidate: Candidate) -> str:
        try:
            digest = file_sha256(candidate.path)
        except OSError:
            return "train"
        return assign_split(None, digest, buckets, [])

    return split_of


def held_out(scan: ScanResult, buckets: Dict[str, int],
             split_of: Optional[Callable[[Candidate], str]] = None
             ) -> Tuple[List[Candidate], List[Candidate], str]:
    """``(held-out, pool, description of the held-out source)``."""
    if scan.splits:
        name = "test" if "test" in scan.splits else "eval" if "eval" in scan.splits else None
        if name is None:
            raise DatasetError(f"the data has splits {scan.splits} but no 'test' or 'eval' split "
                               "to hold out; --subset needs one (or unsplit class folders)")
        out = [c for c in scan.candidates if c.split == name]
        return out, [c for c in scan.candidates if c.split != name], f"the data's '{name}' split"
    if "test" not in buckets:
        raise DatasetError(f"data.split_buckets={buckets} has no 'test' bucket to hold out")
    split_of = split_of or _hash_split(buckets)
    marks = [(c, split_of(c)) for c in scan.candidates]
    share = f"{buckets['test']}/{sum(buckets.values())}"
    return ([c for c, s in marks if s == "test"], [c for c, s in marks if s != "test"],
            f"the content-hash 'test' bucket ({share} of the images), as lensflow run splits")


def balanced_draw(pool: Sequence[Candidate], n: int, rng: random.Random
                  ) -> Tuple[List[Candidate], List[str]]:
    """``n`` candidates spread evenly over the classes (the first ``n mod k`` classes in name
    order get one more); a class with too few takes all it has. Returns (drawn, warnings)."""
    by_class: Dict[str, List[Candidate]] = {}
    for candidate in sorted(pool, key=lambda c: c.rel_path):
        by_class.setdefault(candidate.label, []).append(candidate)
    labels = sorted(by_class)
    if not labels:
        return [], []
    base, extra = divmod(n, len(labels))
    drawn, warnings = [], []
    for index, label in enumerate(labels):
        want = base + (1 if index < extra else 0)
        have = by_class[label]
        if want > len(have):
            warnings.append(f"class '{label}' has {len(have)} images in the pool, "
                            f"{want} wanted: took all")
        drawn += rng.sample(have, min(want, len(have)))
    return drawn, warnings


def eval_count(n: int, num_classes: int, buckets: Dict[str, int]) -> int:
    """Validation images for ``n`` training images: the train:eval bucket ratio, >= 1 per class."""
    return max(num_classes, round(n * buckets.get("eval", 1) / buckets.get("train", 8)))


def select(scan: ScanResult, n: int, seed: int, buckets: Dict[str, int],
           split_of: Optional[Callable[[Candidate], str]] = None) -> Subset:
    """The subset manifest rows for ``n`` training images (see the module docstring)."""
    if n < 1:
        raise DatasetError(f"--subset {n}: must be at least 1")
    test, pool, source = held_out(scan, buckets, split_of)
    if not test:
        raise DatasetError(f"{source} is empty: nothing to evaluate on")
    rng = random.Random(seed)
    train, warnings = balanced_draw(pool, n, rng)
    taken = {c.path for c in train}
    rest = [c for c in pool if c.path not in taken]
    classes = len({c.label for c in pool})
    evals, eval_warnings = balanced_draw(rest, eval_count(n, classes, buckets), rng)
    warnings += [f"eval: {w}" for w in eval_warnings]
    rows = ([(c.path, c.label, "train") for c in train] + [(c.path, c.label, "eval") for c in evals]
            + [(c.path, c.label, "test") for c in sorted(test, key=lambda c: c.rel_path)])
    return Subset(rows=rows, held_out_source=source, requested=n, warnings=warnings)


def write_manifest(subset: Subset, path: str) -> str:
    """Write the manifest CSV (absolute image paths); returns its absolute path."""
    path = os.path.abspath(path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "label", "split"])
        writer.writerows((os.path.abspath(p), label, split) for p, label, split in subset.rows)
    return path
