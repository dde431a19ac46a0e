"""ImageExampleGen's Beam executor on a folder laced with bad files, and on a pre-split tree."""
import glob
import os
from dataclasses import replace

import numpy as np
import pytest
import tensorflow as tf
from tfx.types import artifact_utils, standard_artifacts, standard_component_specs
from tfx.utils import proto_utils

from lensflow.components.image_example_gen import duplicates, report
from lensflow.components.image_example_gen.component import ImageExampleGen
from lensflow.components.image_example_gen.executor import (Executor, assign_split, read_spill,
                                                            spill)
from lensflow.components.image_example_gen.scan import DatasetError
from lensflow.components.image_example_gen.tests.badfiles import make_bad_tree
from lensflow.components.transform import features
from lensflow.pipeline.config import CUSTOM_CONFIG_KEY, LensflowConfig


def run_executor(data_dir, out_dir, cfg=None):
    """Run the executor as TFX would, with the exec properties ImageExampleGen declares."""
    cfg = cfg or LensflowConfig()
    component = ImageExampleGen(input_base=str(data_dir),
                                custom_config={CUSTOM_CONFIG_KEY: cfg.to_json()})
    props = {k: v for k, v in component.exec_properties.items()}
    for key, value in props.items():
        if hasattr(value, "DESCRIPTOR"):
            props[key] = proto_utils.proto_to_json(value)
    examples = standard_artifacts.Examples()
    examples.uri = str(out_dir)
    Executor().Do({}, {standard_component_specs.EXAMPLES_KEY: [examples]}, props)
    return examples


def read_examples(examples, split):
    pattern = os.path.join(artifact_utils.get_split_uri([examples], split), "*.gz")
    out = []
    for record in tf.data.TFRecordDataset(glob.glob(pattern), compression_type="GZIP"):
        out.append(tf.train.Example.FromString(record.numpy()))
    return out


def test_bad_files_are_reported_with_reasons_and_counts_reconcile(tmp_path):
    expected = make_bad_tree(tmp_path / "data", good_per_class=6)
    examples = run_executor(tmp_path / "data", tmp_path / "out")
    summary = report.read(examples.uri)
    assert summary["found"] == summary["ingested"] + len(summary["rejected"]) + len(summary["ignored"])
    assert summary["ingested"] == expected["good"]
    rejected = {r["path"]: r["reason"] for r in summary["rejected"]}
    assert set(rejected) == set(expected["rejected"])
    for path, reason_part in expected["rejected"].items():
        assert reason_part.lower() in rejected[path].lower(), (path, rejected[path])
    assert {r["path"] for r in summary["ignored"]} == set(expected["ignored"])
    assert any(expected["empty_folders"][0] in w for w in summary["warnings"])
    assert examples.get_int_custom_property("rejected") == len(expected["rejected"])
    names = artifact_utils.decode_split_names(examples.split_names)
    assert sorted(names) == ["eval", "test", "train"]
    written = {s: read_examples(examples, s) for s in names}
    assert sum(len(v) for v in written.values()) == expected["good"]
    assert {s: len(v) for s, v in written.items()} == {
        s: e["total"] for s, e in summary["splits"].items()} | {
        s: 0 for s in names if s not in summary["splits"]}
    paths = {ex.features.feature[features.PATH_KEY].bytes_list.value[0].decode()
             for v in written.values() for ex in v}
    assert paths == set(expected["labels"])
    for example in (ex for v in written.values() for ex in v):
        feat = example.features.feature
        label = expected["labels"][feat[features.PATH_KEY].bytes_list.value[0].decode()]
        assert feat[features.LABEL_KEY].bytes_list.value[0].decode() == label
        decoded = tf.io.decode_png(feat[features.IMAGE_KEY].bytes_list.value[0])
        assert decoded.shape[0] == feat[features.HEIGHT_KEY].int64_list.value[0]
    # the decoded examples spilled while duplicates were resolved are gone with the work folder
    assert not os.path.exists(os.path.join(examples.uri, ".ingestion"))


def test_a_spilled_record_reads_back_with_its_placement_fields_and_example_bytes(tmp_path):
    member = duplicates.Member("täg/a\nb.png", "täg", "train", "ab" * 32, 7, b"\0" * 256)
    example = tf.train.Example(features=tf.train.Features(feature={
        features.IMAGE_KEY: tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"\n\0png"]))}))
    path = str(tmp_path / "spill.tfrecord")
    with tf.io.TFRecordWriter(path) as writer:
        for split in ("train", None):
            writer.write(spill((replace(member, split=split), example)))
    read = list(read_spill(path))
    assert [fields for fields, _ in read] == [
        ("train", "täg", "täg/a\nb.png", "ab" * 32), (None, "täg", "täg/a\nb.png", "ab" * 32)]
    assert all(tf.train.Example.FromString(body) == example for _, body in read)


def test_presplit_tree_keeps_test_apart_and_lends_eval_from_train(tmp_path):
    for offset, split in enumerate(("train", "test")):
        make_bad_tree(tmp_path / "tmp" / split, good_per_class=20, seed=10_000 * offset)
        root = tmp_path / "data" / split
        root.mkdir(parents=True)
        for cls in ("cats", "dogs"):
            os.rename(tmp_path / "tmp" / split / cls, root / cls)
    examples = run_executor(tmp_path / "data", tmp_path / "out")
    summary = report.read(examples.uri)
    assert summary["layout"] == "presplit"
    test_paths = {ex.features.feature[features.PATH_KEY].bytes_list.value[0].decode()
                  for ex in read_examples(examples, "test")}
    assert test_paths and all(p.startswith("test/") for p in test_paths)
    for split in ("train", "eval"):
        for ex in read_examples(examples, split):
            assert ex.features.feature[features.PATH_KEY].bytes_list.value[0].decode().startswith("train/")


def test_fewer_than_two_classes_stops_with_a_clear_error(tmp_path):
    make_bad_tree(tmp_path / "data")
    import shutil
    shutil.rmtree(tmp_path / "data" / "dogs")
    with pytest.raises(DatasetError, match="at least two classes"):
        run_executor(tmp_path / "data", tmp_path / "out")


def test_split_assignment_is_deterministic_by_content_hash():
    buckets = {"train": 8, "eval": 1, "test": 1}
    hashes = [f"{i:064x}" for i in range(2000)]
    first = [assign_split(None, h, buckets, buckets) for h in hashes]
    assert first == [assign_split(None, h, buckets, buckets) for h in hashes]
    share = first.count("train") / len(first)
    assert 0.75 < share < 0.85
    assert assign_split("test", hashes[0], buckets, ["train", "test"]) == "test"
    assert {assign_split("train", h, buckets, ["train", "test"]) for h in hashes} == {"train", "eval"}


def test_examples_are_written_with_classes_interleaved_not_folder_by_folder(tmp_path):
    """Scans list files class by class; a class-sorted TFRecord would give any reader with a
    shuffle buffer smaller than a class single-class batches."""
    import numpy as np
    from PIL import Image

    classes, per_class = ("a", "b", "c", "d"), 40
    rng = np.random.default_rng(0)
    for cls in classes:
        (tmp_path / "data" / cls).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 255, (8, 8), dtype=np.uint8)).save(
                tmp_path / "data" / cls / f"{i:03d}.png")
    examples = run_executor(tmp_path / "data", tmp_path / "out")
    labels = [ex.features.feature[features.LABEL_KEY].bytes_list.value[0].decode()
              for split in artifact_utils.decode_split_names(examples.split_names)
              for ex in read_examples(examples, split)]
    assert sorted(labels) == sorted(c for c in classes for _ in range(per_class))
    runs = 1 + sum(a != b for a, b in zip(labels, labels[1:]))
    assert len(labels) / runs < 3, f"mean same-class run {len(labels) / runs:.1f}"
    assert len(set(labels[:16])) == len(classes)


def test_files_the_served_model_cannot_decode_are_ingested_with_a_warning(tmp_path):
    from lensflow.components.transform.tests import corpus

    from PIL import Image

    for k, label in enumerate(("boot", "bag")):
        (tmp_path / "data" / label).mkdir(parents=True)
        for number in range(6):
            shifted = np.roll(corpus.base_image(), 3 * number + k, axis=1)
            Image.fromarray(shifted).save(tmp_path / "data" / label / f"{number}.png")
    for name, data in corpus.not_serveable().items():
        (tmp_path / "data" / "boot" / f"odd.{name}").write_bytes(data)
    summary = report.read(run_executor(tmp_path / "data", tmp_path / "out").uri)
    assert summary["ingested"] == 14
    listed = {item["path"]: item["reason"] for item in summary["not_serveable"]}
    assert set(listed) == {"boot/odd.webp", "boot/odd.tiff"}
    assert "WebP images cannot be decoded" in listed["boot/odd.webp"]
    assert "TIFF images cannot be decoded" in listed["boot/odd.tiff"]
    assert any("2 ingested file(s) will not be serveable as sent" in w for w in summary["warnings"])


def test_data_fingerprint_follows_content_and_labels_not_file_times(tmp_path):
    """The Examples artifact records what was ingested (the run-time data fingerprint)."""
    from PIL import Image

    from lensflow.components.pusher.fingerprint import DATA_FINGERPRINT

    data = tmp_path / "data"
    for label, shade in (("dark", 10), ("light", 200)):
        (data / label).mkdir(parents=True)
        for i in range(6):
            Image.new("L", (8, 8), color=shade + i).save(data / label / f"{i}.png")

    cfg = LensflowConfig().replace(**{"data.split_buckets": {"train": 1, "eval": 1}})

    def fingerprint(out):
        examples = run_executor(data, tmp_path / out, cfg)
        return examples.get_string_custom_property(DATA_FINGERPRINT)

    first = fingerprint("o1")
    assert len(first) == 64
    for path in data.rglob("*.png"):
        os.utime(path, (1, 1))
    assert fingerprint("o2") == first
    os.rename(data / "dark" / "0.png", data / "light" / "relabelled.png")
    assert fingerprint("o3") != first


def test_batched_serving_check_gives_each_file_its_own_answer():
    """One TensorFlow call per batch (``serving_refusals``) answers exactly as the served
    graph's check file by file: a batch of serveable files, and one mixing in refused files
    (bomb header, WebP, TIFF), whose reasons stay attached to their own files."""
    from lensflow.components.image_example_gen.executor import serving_refusals
    from lensflow.components.transform.decode import serving_refusal
    from lensflow.components.transform.tests import corpus

    good = list(corpus.corpus().values())
    mixed = good[:3] + [corpus.bomb_png()] + good[3:5] + list(corpus.not_serveable().values())
    limit = LensflowConfig().data.max_image_pixels
    for files in (good, mixed):
        expected = [serving_refusal(data, limit) for data in files]
        assert serving_refusals(files, limit) == expected
    assert all(reason is None for reason in serving_refusals(good, limit))
    assert sum(reason is not None for reason in serving_refusals(mixed, limit)) == 3
    assert serving_refusals([], limit) == []
