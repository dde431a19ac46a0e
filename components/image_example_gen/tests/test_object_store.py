"""Ingestion from an S3 bucket (moto's S3 server on loopback, spoken to over HTTP by
tensorflow-io) gives what the same tree gives from a local folder; the data fingerprint of a
URI follows its objects. Each step runs in a child process (``tests/object_store_steps.py``)."""
import shutil
from pathlib import Path

import pytest

from lensflow.pipeline.config import SAMPLE_DATA
from tests import object_store_steps as steps

CLASSES = ("bag", "sneaker", "trouser")
pytestmark = pytest.mark.slow  # real ingestions in a child process: tens of seconds


def _tree(root: Path, per_class: int = 5, splits=None) -> Path:
    """Real sample images in class folders (under split folders when ``splits``), plus a
    hidden file, a text file and a zero-byte image that ingestion must skip or reject."""
    for split in splits or [None]:
        for label in CLASSES:
            folder = root / split / label if split else root / label
            folder.mkdir(parents=True)
            sources = sorted((SAMPLE_DATA / label).glob("*.png"))
            offset = (splits or [None]).index(split) * per_class
            for source in sources[offset:offset + per_class]:
                shutil.copy(source, folder / source.name)
    first = root / (splits[0] if splits else "") / CLASSES[0]
    (first / ".DS_Store").write_bytes(b"\0\1")
    (first / "notes.txt").write_text("not an image")
    (first / "empty.png").write_bytes(b"")
    return root


def _upload(server, bucket: str, root: Path, prefix: str) -> str:
    client = server.client()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        client.upload_file(str(path), bucket, f"{prefix}/{path.relative_to(root).as_posix()}")
    return f"s3://{bucket}/{prefix}"


@pytest.fixture(scope="module")
def bucket(s3_server):
    return s3_server.create_bucket("ingest-tests")


@pytest.fixture(scope="module")
def store(s3_server):
    """One child process for the module's steps."""
    session = steps.Session(s3_server)
    yield session
    session.close()


def test_class_folders_and_a_manifest_in_a_bucket_ingest_like_the_local_tree(
        s3_server, bucket, store, tmp_path):
    local = _tree(tmp_path / "tree")
    first = {label: sorted((local / label).glob("train*"))[:2] for label in CLASSES[:2]}
    rows = ["path,label,split"] + [
        f"{label}/{path.name},{label[0]},{split}" for label in CLASSES[:2]
        for path, split in zip(first[label], ("train", "eval"))] + [f"{CLASSES[2]}/missing.png,b,eval"]
    uri = f"s3://{bucket}/classes"
    # the manifest sits in the tree's root (a file there is ignored by the class-folder scan);
    # one row names its object by URI, the others relative to the manifest's prefix
    (local / "manifest.csv").write_text("\n".join(rows[:-2] + [f"{uri}/{rows[-2]}", rows[-1]]))
    _upload(s3_server, bucket, local, "classes")

    from_s3 = store.call("ingest", uri, tmp_path / "out-s3")
    from_disk = store.call("ingest", local, tmp_path / "out")
    manifest_s3 = store.call("ingest", uri, tmp_path / "out-s3-manifest", f"{uri}/manifest.csv")

    assert from_s3["counts"] == from_disk["counts"]
    assert from_s3["counts"]["ingested"] == 3 * 5 and from_s3["counts"]["rejected"] == 1
    assert from_s3["examples"] == from_disk["examples"]
    assert from_s3["rejected"] == from_disk["rejected"] == [["bag/empty.png", "zero-byte file"]]
    assert from_s3["fingerprint"] == from_disk["fingerprint"]

    assert sorted((split, label, path) for split, label, path, _ in manifest_s3["examples"]) == \
        sorted((split, label[0], f"{label}/{path.name}") for label in CLASSES[:2]
               for path, split in zip(first[label], ("train", "eval")))
    assert manifest_s3["rejected"] == [
        [f"{CLASSES[2]}/missing.png", f"manifest line {len(rows)}: file not found"]]


def test_a_presplit_tree_in_a_bucket_keeps_its_splits(s3_server, bucket, store, tmp_path):
    local = _tree(tmp_path / "tree", per_class=2, splits=["train", "validation", "test"])
    uri = _upload(s3_server, bucket, local, "presplit")
    from_s3 = store.call("ingest", uri, tmp_path / "out-s3")
    assert {split for split, *_ in from_s3["examples"]} == {"train", "eval", "test"}
    assert sorted(path for split, _, path, _ in from_s3["examples"] if split == "test") == sorted(
        p.relative_to(local).as_posix() for p in (local / "test").rglob("train_*.png"))

    missing = store.call("ingest", f"s3://{bucket}/no-such-tree", tmp_path / "out-none",
                         check=False)
    assert missing["error"] == "DatasetError" and "no-such-tree" in missing["message"]


def test_the_fingerprint_of_a_bucket_follows_its_objects(s3_server, bucket, store, tmp_path):
    local = _tree(tmp_path / "tree", per_class=2)
    uri = _upload(s3_server, bucket, local, "fingerprinted")
    first = store.call("fingerprint", uri)["fingerprint"]
    assert first and store.call("fingerprint", uri)["fingerprint"] == first

    victim = sorted((local / CLASSES[1]).glob("*.png"))[0]
    replacement = next(p for p in sorted((SAMPLE_DATA / CLASSES[2]).glob("*.png"))
                       if p.stat().st_size != victim.stat().st_size)
    s3_server.client().upload_file(str(replacement), bucket,
                                   f"fingerprinted/{victim.relative_to(local).as_posix()}")
    changed = store.call("fingerprint", uri)["fingerprint"]
    assert changed != first

    s3_server.client().put_object(Bucket=bucket, Key=f"fingerprinted/{CLASSES[0]}/new.png",
                                  Body=replacement.read_bytes())
    assert store.call("fingerprint", uri)["fingerprint"] not in (first, changed)

    missing = store.call("fingerprint", f"s3://{bucket}/nothing-here", check=False)
    assert missing["error"] == "FileNotFoundError" and f"s3://{bucket}/nothing-here" in \
        missing["message"]
