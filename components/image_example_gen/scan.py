"""Find the image files of a dataset and account for every file that is not one.

Three layouts are understood:

* class folders: ``root/<class>/**/<file>`` (sub-folders of a class folder belong to it);
* pre-split trees: ``root/<split>/<class>/**/<file>`` when every top-level folder is a split
  name (``train``, ``test``, ``eval``; ``validation`` means ``eval``);
* a CSV manifest with the header ``path,label`` and an optional ``split`` column.

The root (or the manifest, and the paths it lists) may be a URI (``s3://``, ``gs://``): an object
store is listed through ``tf.io.gfile`` (``_StoreWalker``: no symlinks or special files there,
a "folder" is a key prefix), and the same layouts, skips and warnings apply.

Nothing is decoded here: ``decode.load_image`` judges the candidates. Every file seen ends up
either as a ``Candidate`` or as a ``Skipped`` entry with a reason, so the caller can reconcile
found = candidates + skipped. Order is deterministic (sorted by relative path).
"""
from __future__ import annotations

import csv
import errno
import io
import os
import posixpath
import stat
import unicodedata
from dataclasses import dataclass, field
from typing import Dict, FrozenSet, Iterable, List, Optional, Tuple

from lensflow.pipeline.object_store import ensure_filesystem, is_uri

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
SPLIT_ALIASES = {"train": "train", "test": "test", "eval": "eval", "validation": "eval"}
MANIFEST_COLUMNS = ("path", "label", "split")
IGNORED = "ignored"
REJECTED = "rejected"
_SKIPPED = ("skipped", "")
_LAYOUT_HELP = "expected root/<class>/<image> or root/<train|eval|test>/<class>/<image>"


class DatasetError(ValueError):
    """The dataset as a whole is unusable (missing root, bad manifest header, too few classes)."""


@dataclass(frozen=True)
class Candidate:
    """A file that looks like an image; ``decode.load_image`` decides whether it is usable."""
    path: str
    rel_path: str
    label: str
    split: Optional[str]


@dataclass(frozen=True)
class Skipped:
    """A file (or folder) left out, with the reason; kind is ``ignored`` or ``rejected``."""
    path: str
    rel_path: str
    reason: str
    kind: str


@dataclass
class ScanResult:
    """Candidates, skipped entries and warnings; ``classes`` are those with a candidate."""
    candidates: List[Candidate] = field(default_factory=list)
    skipped: List[Skipped] = field(default_factory=list)
    warnings: List[str] = field(default_factory=list)
    layout: str = "class_folders"
    classes: List[str] = field(default_factory=list)
    splits: List[str] = field(default_factory=list)

    def finish(self) -> "ScanResult":
        """Sort entries and derive ``classes`` and ``splits`` from the candidates."""
        self.candidates.sort(key=lambda c: (c.rel_path, c.split or ""))
        self.skipped.sort(key=lambda s: s.rel_path)
        self.classes = sorted({c.label for c in self.candidates})
        self.splits = sorted({c.split for c in self.candidates if c.split is not None})
        self.warnings.extend(_split_coverage_warnings(self.candidates))
        return self


def check_classes(label_counts: Dict[str, int]) -> None:
    """Raise DatasetError unless two or more classes have usable images (counted after decoding)."""
    usable = {label: n for label, n in sorted(label_counts.items()) if n > 0}
    if len(usable) >= 2:
        return
    found = ", ".join(f"'{label}' ({n} images)" for label, n in usable.items()) or "none"
    raise DatasetError(f"need at least two classes with usable images; found {found}")


def normalise_label(name: str) -> str:
    """Class names compare in Unicode NFC form (macOS file systems hand out NFD names)."""
    return unicodedata.normalize("NFC", name.strip())


def scan_directory(root: str) -> ScanResult:
    """Scan a class-folder or pre-split tree under ``root`` (a folder or a URI)."""
    if is_uri(root):
        walker = _StoreWalker(root)
    else:
        root_abs = os.path.abspath(root)
        if not os.path.isdir(root_abs):
            raise DatasetError(
                f"dataset folder {root!r} does not exist or is not a folder; {_LAYOUT_HELP}")
        if not os.access(root_abs, os.R_OK | os.X_OK):
            raise DatasetError(f"dataset folder {root!r} cannot be read (permission denied)")
        walker = _Walker(root_abs)
    top_dirs = walker.top_level()
    if not top_dirs:
        walker.result.warnings.append(f"no folders under {root!r}; {_LAYOUT_HELP}")
    split_folders = sorted(name for name, _ in top_dirs if name.lower() in SPLIT_ALIASES)
    others = sorted(name for name, _ in top_dirs if name.lower() not in SPLIT_ALIASES)
    if split_folders and others:
        raise DatasetError(
            f"{root!r}: top-level folders mix split names {split_folders} with other folders "
            f"{others}; {_LAYOUT_HELP}")
    if split_folders:
        walker.result.layout = "presplit"
        for name, (path, ancestors) in top_dirs:
            walker.split_folder(path, name, SPLIT_ALIASES[name.lower()], ancestors)
    else:
        for name, (path, ancestors) in top_dirs:
            walker.class_folder(path, name, normalise_label(name), None, ancestors)
    return walker.result.finish()


class _Walker:
    """Walks one tree, following directory symlinks that leave it, never entering a loop."""

    def __init__(self, root: str):
        self.root = root
        self.root_real = os.path.realpath(root)
        self.visited = {self.root_real}
        self.result = ScanResult()

    def top_level(self) -> List[Tuple[str, Tuple[str, FrozenSet[str]]]]:
        """Skip the files of the root; return its folders as (name, (path, ancestors))."""
        return self._folders_of(self.root, "", frozenset({self.root_real}),
                                "file in the dataset root, not in a class folder")

    def split_folder(self, path: str, rel: str, split: str, ancestors: FrozenSet[str]) -> None:
        """Scan ``root/<split>/<class>`` folders; files directly in the split folder are ignored."""
        folders = self._folders_of(path, rel, ancestors,
                                   f"file directly in split folder '{rel}', not in a class folder")
        if not folders:
            self.result.warnings.append(f"split folder '{rel}' contains no class folders")
        for name, (sub_path, sub_ancestors) in folders:
            self.class_folder(sub_path, f"{rel}/{name}", normalise_label(name), split,
                              sub_ancestors)

    def class_folder(self, path: str, rel: str, label: str, split: Optional[str],
                     ancestors: FrozenSet[str]) -> None:
        """Collect every image file below one class folder; warn when there is none."""
        found = 0
        stack = [(path, rel, ancestors)]
        while stack:
            folder, folder_rel, folder_ancestors = stack.pop()
            for _, entry_path, entry_rel in self._entries(folder, folder_rel):
                kind, real = self._inspect(entry_path, entry_rel, folder_ancestors)
                if kind == "dir":
                    stack.append((entry_path, entry_rel, folder_ancestors | {real}))
                elif kind == "file":
                    found += self._file(entry_path, entry_rel, label, split)
        if not found:
            self.result.warnings.append(f"class folder '{rel}' contains no image files")

    def _folders_of(self, path: str, rel: str, ancestors: FrozenSet[str], file_reason: str):
        """Return the sub-folders of ``path``; every file in it is ignored with ``file_reason``."""
        folders = []
        for name, entry_path, entry_rel in self._entries(path, rel):
            kind, real = self._inspect(entry_path, entry_rel, ancestors)
            if kind == "dir":
                folders.append((name, (entry_path, ancestors | {real})))
            elif kind == "file":
                self._skip(entry_path, entry_rel, file_reason, IGNORED)
        return folders

    def _entries(self, folder: str, folder_rel: str) -> Iterable[Tuple[str, str, str]]:
        """Yield (name, path, rel_path) sorted by name; an unlistable folder is rejected."""
        try:
            names = sorted(os.listdir(folder))
        except OSError as exc:
            self._skip(folder, folder_rel or ".", f"cannot list folder: {exc.strerror}", REJECTED)
            return
        for name in names:
            yield name, os.path.join(folder, name), f"{folder_rel}/{name}" if folder_rel else name

    def _inspect(self, path: str, rel: str, ancestors: FrozenSet[str]) -> Tuple[str, str]:
        """Classify an entry: ("dir", realpath), ("file", ""), or ("skipped", "") once recorded."""
        name = os.path.basename(path)
        is_link = os.path.islink(path)
        try:
            info = os.stat(path)
        except OSError as exc:
            self._skip(path, rel, _stat_failure(path, exc, is_link), REJECTED)
            return _SKIPPED
        is_dir = stat.S_ISDIR(info.st_mode)
        if name.startswith(".") or name == "__MACOSX":
            self._skip(path, rel, "hidden folder" if is_dir else "hidden file", IGNORED)
            return _SKIPPED
        if is_dir:
            return self._follow_dir(path, rel, ancestors, is_link)
        if stat.S_ISREG(info.st_mode):
            return ("file", "")
        self._skip(path, rel, "not a regular file (device, socket or pipe)", REJECTED)
        return _SKIPPED

    def _follow_dir(self, path: str, rel: str, ancestors: FrozenSet[str],
                    is_link: bool) -> Tuple[str, str]:
        """Enter a folder unless it closes a symlink loop or repeats a folder scanned elsewhere."""
        real = os.path.realpath(path)
        if real in ancestors:
            self._skip(path, rel, f"symlink loop: points back to its ancestor folder {real!r}",
                       REJECTED)
            return _SKIPPED
        if is_link and _is_within(real, self.root_real):
            self._skip(path, rel, "symlink to a folder inside the dataset; its files are scanned "
                                  "at their real location", IGNORED)
            return _SKIPPED
        if real in self.visited:
            self._skip(path, rel, f"folder {real!r} was already scanned through another path",
                       REJECTED)
            return _SKIPPED
        self.visited.add(real)
        return ("dir", real)

    def _file(self, path: str, rel: str, label: str, split: Optional[str]) -> int:
        """Record an image candidate (1) or an ignored non-image file (0)."""
        if os.path.splitext(path)[1].lower() not in IMAGE_EXTENSIONS:
            self._skip(path, rel, "not an image extension", IGNORED)
            return 0
        self.result.candidates.append(Candidate(path, rel, label, split))
        return 1

    def _skip(self, path: str, rel: str, reason: str, kind: str) -> None:
        self.result.skipped.append(Skipped(path, rel, reason, kind))


class _StoreWalker(_Walker):
    """The same walk over an object store through ``tf.io.gfile``: a folder is a key prefix,
    every object is a regular file, and there are no links to follow. ``tf.io.gfile`` cannot
    tell a prefix from an object in a listing, so each entry costs one request: fine for
    thousands of images, slow for hundreds of thousands (a paged listing would be one request
    per thousand keys)."""

    def __init__(self, root: str):
        import tensorflow as tf

        ensure_filesystem(root)
        self._gfile = tf.io.gfile
        root = root.rstrip("/")
        try:
            found = self._gfile.isdir(root)
        except tf.errors.OpError as exc:
            raise DatasetError(f"dataset location {root!r} cannot be listed: {exc.message}") from exc
        if not found:
            raise DatasetError(f"dataset location {root!r} holds no objects; {_LAYOUT_HELP}")
        self.root = self.root_real = root
        self.visited = {root}
        self.result = ScanResult()

    def _entries(self, folder: str, folder_rel: str) -> Iterable[Tuple[str, str, str]]:
        try:
            names = sorted({name.rstrip("/") for name in self._gfile.listdir(folder)})
        except Exception as exc:  # noqa: BLE001 - tf.errors.OpError; recorded, never fatal
            self._skip(folder, folder_rel or ".", f"cannot list: {getattr(exc, 'message', exc)}",
                       REJECTED)
            return
        for name in names:
            yield name, f"{folder}/{name}", f"{folder_rel}/{name}" if folder_rel else name

    def _inspect(self, path: str, rel: str, ancestors: FrozenSet[str]) -> Tuple[str, str]:
        name = posixpath.basename(path)
        is_dir = self._gfile.isdir(path)
        if name.startswith(".") or name == "__MACOSX":
            self._skip(path, rel, "hidden folder" if is_dir else "hidden file", IGNORED)
            return _SKIPPED
        return ("dir", path) if is_dir else ("file", "")


def _stat_failure(path: str, exc: OSError, is_link: bool) -> str:
    """Explain why ``os.stat`` failed: symlink loop, broken symlink or an unreadable entry."""
    if exc.errno == errno.ELOOP:
        return "symlink loop: the link resolves to itself"
    if is_link and exc.errno == errno.ENOENT:
        return f"broken symlink: target {os.readlink(path)!r} does not exist"
    return f"unreadable: {exc.strerror}"


def _is_within(path: str, folder: str) -> bool:
    return os.path.commonpath([path, folder]) == folder


def _split_coverage_warnings(candidates: List[Candidate]) -> List[str]:
    """Warn about classes that have images in some splits but none in others."""
    by_split: Dict[str, set] = {}
    for candidate in candidates:
        if candidate.split is not None:
            by_split.setdefault(candidate.split, set()).add(candidate.label)
    if not by_split:
        return []
    every = set().union(*by_split.values())
    warnings = [f"class '{label}' has no image files in split '{split}'"
                for split, labels in sorted(by_split.items()) for label in sorted(every - labels)]
    if "train" not in by_split:
        warnings.append(f"no image files in a 'train' split; splits found: {sorted(by_split)}")
    return warnings


def scan_manifest(csv_path: str) -> ScanResult:
    """Read a CSV manifest (``path,label[,split]``); relative paths resolve against its folder
    (a key prefix when the manifest is a URI); a path may itself be a URI."""
    csv_abs = csv_path if is_uri(csv_path) else os.path.abspath(csv_path)
    base = posixpath.dirname(csv_abs) if is_uri(csv_abs) else os.path.dirname(csv_abs)
    rows = _read_manifest_rows(csv_abs)
    first = next(rows, None)
    columns = _manifest_columns(csv_abs, first[1] if first else None)
    result = ScanResult(layout="manifest")
    extra = [name for name in columns if name not in MANIFEST_COLUMNS]
    if extra:
        result.warnings.append(f"manifest {csv_path!r}: unknown columns {extra} are not used")
    seen: Dict[str, int] = {}
    for line, row in rows:
        entry = _manifest_entry(base, columns, line, row, seen)
        if isinstance(entry, Skipped):
            result.skipped.append(entry)
        elif entry is not None:
            result.candidates.append(entry)
    return result.finish()


def _read_manifest_rows(csv_abs: str):
    """Yield (line number, fields) of the CSV; a file that is not UTF-8 text is a DatasetError."""
    try:
        text = _read_text(csv_abs)
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"cannot read manifest {csv_abs!r}: {exc}") from exc
    reader = csv.reader(io.StringIO(text))
    for row in reader:
        yield reader.line_num, row


def _read_text(path: str) -> str:
    """A local file through ``open``, a URI through ``tf.io.gfile`` (its errors as OSError)."""
    if not is_uri(path):
        with open(path, "r", encoding="utf-8-sig", newline="") as handle:
            return handle.read()
    import tensorflow as tf

    ensure_filesystem(path)
    try:
        with tf.io.gfile.GFile(path, "rb") as handle:
            data = handle.read()
    except tf.errors.OpError as exc:
        raise OSError(exc.message) from exc
    return data.decode("utf-8-sig")


def _resolve(base: str, raw_path: str) -> Tuple[str, str]:
    """(path, path relative to the manifest's folder) of a manifest row's ``path``: a URI is
    kept, a relative path joins the manifest's folder or key prefix."""
    if is_uri(raw_path) or is_uri(base):
        path = raw_path if is_uri(raw_path) else _join_uri(base, raw_path)
        prefix = base.rstrip("/") + "/"
        return path, path[len(prefix):] if path.startswith(prefix) else path
    path = os.path.abspath(os.path.join(base, raw_path))
    return path, os.path.relpath(path, base).replace(os.sep, "/")


def _join_uri(base: str, relative: str) -> str:
    """``scheme://bucket/prefix`` + ``a/../b.png``, normalised in the key part only."""
    scheme, rest = base.split("://", 1)
    return f"{scheme}://{posixpath.normpath(posixpath.join(rest, relative))}"


def _manifest_columns(csv_abs: str, header: Optional[List[str]]) -> List[str]:
    """Validate the header: ``path`` and ``label`` required, ``split`` optional, no duplicates."""
    if header is None:
        raise DatasetError(f"manifest {csv_abs!r} is empty; expected a header 'path,label[,split]'")
    columns = [name.strip().lower() for name in header]
    missing = [name for name in ("path", "label") if name not in columns]
    duplicated = sorted({name for name in columns if columns.count(name) > 1})
    if missing or duplicated:
        raise DatasetError(
            f"manifest {csv_abs!r} has header {header}: missing columns {missing}, duplicated "
            f"columns {duplicated}; expected a header 'path,label' with an optional 'split' column")
    return columns


def _manifest_entry(base: str, columns: List[str], line: int, row: List[str], seen: Dict[str, int]):
    """Turn one CSV row into a Candidate, a rejected Skipped, or None for a blank line."""
    if not any(value.strip() for value in row):
        return None
    values = dict(zip(columns, (value.strip() for value in row)))
    raw_path = values.get("path", "")
    path, rel = _resolve(base, raw_path) if raw_path else ("", f"<line {line}>")

    def reject(reason: str) -> Skipped:
        return Skipped(path, rel, f"manifest line {line}: {reason}", REJECTED)

    if len(row) != len(columns):
        return reject(f"expected {len(columns)} fields, found {len(row)}")
    problem = _manifest_problem(path, values)
    if problem:
        return reject(problem)
    if path in seen:
        return reject(f"duplicate of line {seen[path]}")
    seen[path] = line
    split = SPLIT_ALIASES[values["split"].lower()] if "split" in columns else None
    return Candidate(path, rel, normalise_label(values["label"]), split)


def _manifest_problem(path: str, values: Dict[str, str]) -> Optional[str]:
    """Return why a manifest row is unusable, or None."""
    if not path:
        return "empty path"
    if not values["label"]:
        return "empty label"
    if "split" in values and values["split"].lower() not in SPLIT_ALIASES:
        return f"unknown split {values['split']!r}; expected one of {sorted(SPLIT_ALIASES)}"
    if os.path.splitext(path)[1].lower() not in IMAGE_EXTENSIONS:
        return "not an image extension"
    if is_uri(path):
        return _object_problem(path)
    if os.path.islink(path) and not os.path.exists(path):
        return "broken symlink"
    if not os.path.exists(path):
        return "file not found"
    if not os.path.isfile(path):
        return "not a regular file"
    return None


def _object_problem(uri: str) -> Optional[str]:
    """Why an object a manifest names is unusable (missing, a prefix, unreachable), or None."""
    import tensorflow as tf

    try:
        ensure_filesystem(uri)
        if tf.io.gfile.isdir(uri):
            return "not a regular file"
        if not tf.io.gfile.exists(uri):
            return "file not found"
    except (tf.errors.OpError, RuntimeError) as exc:
        return f"unreadable: {getattr(exc, 'message', exc)}"
    return None
