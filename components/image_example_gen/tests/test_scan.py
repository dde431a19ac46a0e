"""Tests of scan.py: layouts, stray and bad files, symlinks, manifests, reconciliation."""
import os
import unicodedata
from pathlib import Path

import pytest

from lensflow.components.image_example_gen.decode import RejectedImage, load_image
from lensflow.components.image_example_gen.scan import (
    DatasetError, check_classes, scan_directory, scan_manifest)
from lensflow.components.image_example_gen.tests.badfiles import make_bad_tree


def touch(path: Path, content: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def by_rel(entries):
    return {entry.rel_path: entry for entry in entries}


def test_bad_tree_reconciles_after_decoding(tmp_path):
    expected = make_bad_tree(tmp_path / "data")
    result = scan_directory(str(tmp_path / "data"))
    ingested, rejected = {}, {s.rel_path: s.reason for s in result.skipped if s.kind == "rejected"}
    for candidate in result.candidates:
        try:
            load_image(candidate.path)
            ingested[candidate.rel_path] = candidate.label
        except RejectedImage as exc:
            rejected[candidate.rel_path] = exc.reason
    ignored = [s.rel_path for s in result.skipped if s.kind == "ignored"]
    found = len(result.candidates) + len(result.skipped)
    assert len(ingested) + len(rejected) + len(ignored) == found
    assert ingested == expected["labels"] and len(ingested) == expected["good"]
    assert set(rejected) == set(expected["rejected"])
    for rel, substring in expected["rejected"].items():
        assert substring in rejected[rel], (rel, rejected[rel])
    assert sorted(ignored) == sorted(expected["ignored"])
    for folder in expected["empty_folders"]:
        assert any(f"'{folder}'" in warning for warning in result.warnings)
    assert result.layout == "class_folders" and result.classes == ["cats", "dogs"]
    assert all(os.path.isabs(c.path) for c in result.candidates)


def test_class_folders_are_sorted_nested_and_unicode(tmp_path):
    nfd_class = unicodedata.normalize("NFD", "café")
    for rel in ["b/z.PNG", "b/a/deep/x.jpeg", "a/1.jpg", f"{nfd_class}/été.webp", "ñ/图像.tif"]:
        touch(tmp_path / rel)
    first = scan_directory(str(tmp_path))
    assert [c.rel_path for c in first.candidates] == sorted(c.rel_path for c in first.candidates)
    labels = {c.rel_path: c.label for c in first.candidates}
    assert labels["b/a/deep/x.jpeg"] == "b" and labels["b/z.PNG"] == "b"
    assert labels[f"{nfd_class}/été.webp"] == "café"
    assert first.classes == sorted(["a", "b", "café", "ñ"])
    assert all(c.split is None for c in first.candidates) and first.splits == []
    assert scan_directory(str(tmp_path)) == first


def test_stray_hidden_and_root_files_are_ignored_with_reasons(tmp_path):
    touch(tmp_path / "cats" / "a.png")
    touch(tmp_path / "cats" / ".hidden.png")
    touch(tmp_path / "cats" / "notes.csv")
    touch(tmp_path / ".git" / "config")
    touch(tmp_path / "top.jpg")
    skipped = by_rel(scan_directory(str(tmp_path)).skipped)
    assert skipped["cats/.hidden.png"].reason == "hidden file"
    assert skipped["cats/notes.csv"].reason == "not an image extension"
    assert skipped[".git"].reason == "hidden folder"
    assert "not in a class folder" in skipped["top.jpg"].reason
    assert {s.kind for s in skipped.values()} == {"ignored"}


def test_presplit_tree_maps_validation_to_eval_and_warns_on_gaps(tmp_path):
    for rel in ["train/cat/1.png", "train/dog/1.png", "validation/cat/2.png", "test/cat/3.png",
                "test/dog/3.png", "train/stray.png"]:
        touch(tmp_path / rel)
    result = scan_directory(str(tmp_path))
    assert result.layout == "presplit"
    assert result.splits == ["eval", "test", "train"]
    assert {(c.rel_path, c.split, c.label) for c in result.candidates} == {
        ("train/cat/1.png", "train", "cat"), ("train/dog/1.png", "train", "dog"),
        ("validation/cat/2.png", "eval", "cat"), ("test/cat/3.png", "test", "cat"),
        ("test/dog/3.png", "test", "dog")}
    assert "split folder 'train'" in by_rel(result.skipped)["train/stray.png"].reason
    assert "class 'dog' has no image files in split 'eval'" in result.warnings


def test_mixing_split_and_class_folders_is_an_error(tmp_path):
    touch(tmp_path / "train" / "cat" / "1.png")
    touch(tmp_path / "dog" / "1.png")
    with pytest.raises(DatasetError, match="mix split names"):
        scan_directory(str(tmp_path))


def test_missing_root_is_an_error(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        scan_directory(str(tmp_path / "nope"))


def test_symlinks_loops_inside_outside_and_special_files(tmp_path):
    data, outside = tmp_path / "data", tmp_path / "outside"
    touch(outside / "ext.png")
    touch(data / "cats" / "a.png")
    os.symlink(outside, data / "cats" / "external")
    os.symlink(outside, data / "cats" / "external_again")
    os.symlink(outside, outside / "back")
    os.symlink(data / "cats", data / "cats_alias")
    os.symlink("self.png", data / "cats" / "self.png")
    os.mkfifo(data / "cats" / "pipe.png")
    result = scan_directory(str(data))
    assert [c.rel_path for c in result.candidates] == ["cats/a.png", "cats/external/ext.png"]
    skipped = by_rel(result.skipped)
    assert "symlink loop" in skipped["cats/external/back"].reason
    assert "already scanned" in skipped["cats/external_again"].reason
    assert skipped["cats_alias"].kind == "ignored"
    assert "real location" in skipped["cats_alias"].reason
    assert "symlink loop" in skipped["cats/self.png"].reason
    assert "not a regular file" in skipped["cats/pipe.png"].reason


def write_manifest(folder: Path, text: str) -> str:
    path = folder / "manifest.csv"
    path.write_text(text, encoding="utf-8-sig")
    return str(path)


def test_manifest_resolves_paths_and_rejects_bad_rows(tmp_path):
    touch(tmp_path / "img" / "a.png")
    touch(tmp_path / "img" / "b.jpg")
    touch(tmp_path / "img" / "c.png")
    touch(tmp_path / "img" / "notes.txt")
    absolute = touch(tmp_path / "elsewhere" / "d.png")
    csv_path = write_manifest(tmp_path, (
        "path,label,split\n"
        "img/a.png,cat,train\n"
        f"{absolute},dog,validation\n"
        "img/b.jpg,,train\n"
        "img/missing.png,cat,train\n"
        "img/c.png,dog,holdout\n"
        "img/notes.txt,cat,train\n"
        "img/a.png,cat,train\n"
        "img/b.jpg,dog\n"
        "\n"
        "\"img/b.jpg\",\" dog \",test\n"))
    result = scan_manifest(csv_path)
    assert result.layout == "manifest"
    assert [(c.rel_path, c.label, c.split) for c in result.candidates] == [
        ("elsewhere/d.png", "dog", "eval"), ("img/a.png", "cat", "train"),
        ("img/b.jpg", "dog", "test")]
    assert result.candidates[0].path == str(absolute)
    reasons = sorted(s.reason for s in result.skipped)
    assert all(s.kind == "rejected" for s in result.skipped)
    for fragment in ["line 4: empty label", "line 5: file not found", "line 6: unknown split",
                     "line 7: not an image extension", "line 8: duplicate of line 2",
                     "line 9: expected 3 fields, found 2"]:
        assert sum(fragment in reason for reason in reasons) == 1, fragment
    assert result.splits == ["eval", "test", "train"] and result.classes == ["cat", "dog"]


def test_manifest_without_split_column(tmp_path):
    touch(tmp_path / "x" / "猫.png")
    result = scan_manifest(write_manifest(tmp_path, "Path, Label\nx/猫.png,chat\n"))
    rows = [(c.rel_path, c.label, c.split) for c in result.candidates]
    assert rows == [("x/猫.png", "chat", None)]
    assert result.splits == []


@pytest.mark.parametrize("text, message", [
    ("file,class\na.png,cat\n", "missing columns \\['path', 'label'\\]"),
    ("path,label,label\na.png,cat,dog\n", "duplicated columns \\['label'\\]"),
    ("", "is empty"),
])
def test_manifest_bad_header_is_an_error(tmp_path, text, message):
    with pytest.raises(DatasetError, match=message):
        scan_manifest(write_manifest(tmp_path, text))


def test_check_classes_needs_two_usable_classes():
    check_classes({"cat": 3, "dog": 1})
    with pytest.raises(DatasetError, match=r"found 'cat' \(3 images\)$"):
        check_classes({"cat": 3, "dog": 0})
    with pytest.raises(DatasetError, match="found none"):
        check_classes({})
