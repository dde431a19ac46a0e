"""Beam executor of ImageExampleGen: files -> validated, normalised tf.Examples per split.

Scanning lists the files; decoding and encoding run in Beam (any runner). A file that cannot be
used is never fatal: it is reported with its path and reason in ``ingestion_report.json`` beside
the split folders of the Examples artifact, and the counts reconcile
(found = ingested + rejected + ignored). Ingested files the served model would refuse as sent
(WebP, TIFF: the serving graph has no decoder for them) are listed as ``not_serveable``.
Copies of one image (``duplicates.py``) are grouped in one global step and a group's files share
one split; copies dropped by the label-conflict or pre-split policy are rejected with the reason.
The Examples artifact records ``data_fingerprint``, a
digest of what was ingested, from which the training fingerprint is computed at run time.
No step holds every decoded example (``GenerateExamplesByBeam``): memory does not grow with the
dataset beyond one small record per file for the duplicate search.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
from typing import Any, Dict, Iterable, List, Optional

import apache_beam as beam
import tensorflow as tf
from tfx.components.example_gen.base_example_gen_executor import BaseExampleGenExecutor
from google.protobuf import json_format, struct_pb2
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import proto_utils

from lensflow.components.image_example_gen import duplicates, report
from lensflow.components.image_example_gen.decode import RejectedImage, load_image
from lensflow.components.image_example_gen.scan import Candidate, ScanResult, scan_directory, scan_manifest
from lensflow.components.pusher.fingerprint import DATA_FINGERPRINT
from lensflow.components.transform import decode as serving_decode
from lensflow.components.transform import features
from lensflow.components.transform.decode import serving_refusal
from lensflow.pipeline.config import LensflowConfig, from_custom_config
from lensflow.pipeline.disk_errors import disk_cause

REJECTED_TAG = "rejected"
NOT_SERVEABLE_TAG = "not_serveable"
_WORK_DIR = ".ingestion"
SPLIT_FILE = "data_tfrecord"   # TFX's name for a split's files (``-<shard>-of-<n>.gz``)
BATCH_MIN, BATCH_MAX = 16, 256   # files per decode batch (Beam adapts within these bounds)


def size_bucket(height: int, width: int) -> str:
    """Slice value for the original image size."""
    side = max(height, width)
    for limit in (32, 64, 128, 256, 512):
        if side <= limit:
            return f"<={limit}px"
    return ">512px"


def brightness_bucket(mean: float) -> str:
    """Slice value for the mean brightness (0-255)."""
    return "dark" if mean < 85 else "medium" if mean < 170 else "bright"


def to_example(candidate: Candidate, image) -> tf.train.Example:
    """One tf.Example with the normalised PNG bytes and the attributes used for slicing."""
    def b(value: str):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value.encode("utf-8")]))

    def i(value: int):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)]))

    feats = {
        features.IMAGE_KEY: tf.train.Feature(bytes_list=tf.train.BytesList(value=[image.png_bytes])),
        features.LABEL_KEY: b(candidate.label),
        features.PATH_KEY: b(candidate.rel_path),
        features.HEIGHT_KEY: i(image.height),
        features.WIDTH_KEY: i(image.width),
        features.CHANNELS_KEY: i(image.channels),
        features.HASH_KEY: b(image.sha256),
        features.SIZE_BUCKET_KEY: b(size_bucket(image.height, image.width)),
        features.BRIGHTNESS_BUCKET_KEY: b(brightness_bucket(image.mean_brightness)),
    }
    return tf.train.Example(features=tf.train.Features(feature=feats))


def assign_split(candidate_split, content_hash: str, buckets: Dict[str, int],
                 present_splits: Iterable[str]) -> str:
    """Pre-split data keeps its split; ``train`` lends an ``eval`` share when the tree has none;
    everything else is bucketed by ``content_hash``: the duplicate group's key (its smallest
    sha256), so copies never straddle splits."""
    present = set(present_splits)
    if candidate_split and candidate_split != "train":
        return candidate_split
    if candidate_split == "train":
        if "eval" in present:
            return "train"
        buckets = {k: v for k, v in buckets.items() if k in ("train", "eval")}
    names = sorted(buckets)
    total = sum(buckets[n] for n in names)
    point = int(hashlib.sha256(content_hash.encode()).hexdigest()[:12], 16) % total
    for name in names:
        if point < buckets[name]:
            return name
        point -= buckets[name]
    return names[-1]


class _DecodeBatch(beam.DoFn):
    """Decode and validate a batch of candidates; rejects go to a tagged output. Yields each
    file's ``duplicates.Member`` (hashes from the decoded pixels) and its tf.Example; the split
    is decided later, by duplicate group. Batches (``beam.BatchElements``) let the served
    graph's header check and the perceptual hashes run once per batch instead of once per file:
    one eager TensorFlow call per file cost more than Pillow's decode and validation."""

    def __init__(self, max_pixels: int, max_bytes: int):
        self._max_pixels = max_pixels
        self._max_bytes = max_bytes

    def process(self, candidates: List[Candidate]):
        loaded = []
        for candidate in candidates:
            try:
                loaded.append((candidate, load_image(candidate.path, max_pixels=self._max_pixels,
                                                     max_bytes=self._max_bytes)))
            except RejectedImage as err:
                yield beam.pvalue.TaggedOutput(REJECTED_TAG,
                                               _reject_line(candidate.rel_path, str(err)))
        refusals = serving_refusals([image.original_bytes for _, image in loaded],
                                    self._max_pixels)
        hashes = duplicates.fingerprints([image.pixels for _, image in loaded])
        for (candidate, image), refusal, (phash, thumb) in zip(loaded, refusals, hashes):
            if refusal:
                yield beam.pvalue.TaggedOutput(NOT_SERVEABLE_TAG, json.dumps(
                    {"path": candidate.rel_path, "reason": refusal}, ensure_ascii=False))
            member = duplicates.Member(candidate.rel_path, candidate.label, candidate.split,
                                       image.sha256, phash, thumb)
            yield member, to_example(candidate, image)


@functools.lru_cache(maxsize=4)
def _batch_check(max_pixels: int):
    """The served graph's header check over a batch [B] of file bytes -> format ids [B]; JPEGs
    also pass the JPEG check (``serving_decode.check`` on each). Raises as ``check`` does
    when any file would be refused."""
    def formats(images):
        fmt = serving_decode.inspect(images, max_pixels)[0]
        jpegs = tf.boolean_mask(images, tf.equal(fmt, serving_decode.JPEG))
        checked = tf.map_fn(lambda data: serving_decode.check(data, max_pixels), jpegs,
                            fn_output_signature=fmt.dtype)
        with tf.control_dependencies([checked]):
            return tf.identity(fmt)

    return tf.function(formats, input_signature=[tf.TensorSpec([None], tf.string)],
                       autograph=False)


def serving_refusals(files: List[bytes], max_pixels: int) -> List[Optional[str]]:
    """``serving_refusal`` of each file, in one TensorFlow call when the whole batch passes (the
    common case); a batch holding a refused file is asked file by file, for each reason."""
    if not files:
        return []
    try:
        _batch_check(max_pixels)(tf.constant(files, dtype=tf.string))
    except tf.errors.OpError:
        return [serving_refusal(data, max_pixels) for data in files]
    return [None] * len(files)


def _reject_line(path: str, reason: str) -> str:
    return json.dumps({"path": path, "reason": reason}, ensure_ascii=False)


def spill(record) -> bytes:
    """A decoded file as one record of the spill (``ReadSpill`` reads it back once duplicates are
    resolved): its placement fields (split, label, path, sha256) as one JSON line, then its
    serialised tf.Example."""
    member, example = record
    head = json.dumps([member.split, member.label, member.path, member.sha256], ensure_ascii=False)
    return head.encode("utf-8") + b"\n" + example.SerializeToString()


def unspill(data: bytes):
    """``spill``'s inverse: ((split, label, path, sha256), serialised tf.Example)."""
    head, _, body = data.partition(b"\n")
    return tuple(json.loads(head.decode("utf-8"))), body


def read_spill(path: str):
    """The records of one spill file, one at a time (never the whole file in memory)."""
    for data in tf.data.TFRecordDataset(path).as_numpy_iterator():
        yield unspill(data)


class _Place(beam.DoFn):
    """Put one decoded file in its split, drawn from its duplicate group's key (its own content
    hash when it has no copy), or reject it as its group's verdict says. Yields (split, label,
    path, sha256, serialised tf.Example)."""

    def __init__(self, buckets, present_splits):
        self._buckets = buckets
        self._present = list(present_splits)

    def process(self, record, resolution: duplicates.Resolution):
        (split, label, path, sha256), example = record
        verdict = resolution.verdicts.get(path)
        if verdict is not None and verdict.dropped:
            yield beam.pvalue.TaggedOutput(REJECTED_TAG, _reject_line(path, verdict.dropped))
            return
        key = verdict.key if verdict is not None else sha256
        yield assign_split(split, key, self._buckets, self._present), label, path, sha256, example


class FindDuplicates(beam.PTransform):
    """Members -> one ``duplicates.Resolution``: bucket by sha256 and hash bands, compare within
    buckets, then join the (few) pairs into groups in one place."""

    def __init__(self, settings: duplicates.Settings, buckets, present_splits):
        super().__init__()
        self._settings = settings
        self._buckets = dict(buckets)
        self._present = list(present_splits)

    def expand(self, members):
        settings, buckets, present = self._settings, self._buckets, self._present
        return (members
                | "BucketKeys" >> beam.FlatMap(
                    lambda m: [(key, m) for key in duplicates.bucket_keys(m, settings)])
                | "Buckets" >> beam.GroupByKey()
                | "Pairs" >> beam.FlatMap(lambda kv: duplicates.close_pairs(kv[1], settings))
                | "AllPairs" >> beam.combiners.ToList()
                | "Resolve" >> beam.Map(lambda edges: duplicates.resolve(
                    edges, settings,
                    lambda split, key: assign_split(split, key, buckets, present))))


def fingerprint_line(record) -> str:
    """One ingested example as a fingerprint line: split, label, path, content hash."""
    split, label, path, sha256, _ = record
    return json.dumps([split, label, path, sha256])


def digest_lines(lines: Iterable[str]) -> str:
    """sha256 over the sorted lines, so the order Beam delivers them in does not matter."""
    digest = hashlib.sha256()
    for line in sorted(lines):
        digest.update(line.encode("utf-8") + b"\n")
    return digest.hexdigest()


def output_splits(scan: ScanResult, cfg: LensflowConfig) -> List[str]:
    """Split names the Examples artifact will hold."""
    if scan.splits:
        names = set(scan.splits) | {"train", "eval"}
    else:
        names = set(cfg.data.split_buckets)
    return sorted(names)


def mixed_order(candidates: Iterable[Candidate]) -> List[Candidate]:
    """Candidates in a fixed pseudo-random order (by a hash of the relative path). Scans list
    files class folder by class folder; written in that order, every reader whose shuffle buffer
    is smaller than a class would train on single-class batches."""
    return sorted(candidates, key=lambda c: hashlib.sha256(c.rel_path.encode("utf-8")).digest())


def scan(cfg: LensflowConfig, input_base: str) -> ScanResult:
    """List the dataset from a manifest or a directory."""
    if cfg.data.manifest:
        return scan_manifest(cfg.data.manifest)
    return scan_directory(input_base)


class Executor(BaseExampleGenExecutor):
    """ExampleGen executor for image folders, pre-split trees and CSV manifests."""

    def GetInputSourceToExamplePTransform(self) -> beam.PTransform:
        raise NotImplementedError("ImageExampleGen generates all splits in GenerateExamplesByBeam")

    def GenerateExamplesByBeam(self, pipeline: beam.Pipeline, exec_properties: Dict[str, Any]):
        """Decode, resolve duplicates, place and write every split; returns no split for the
        base executor to write.

        Memory does not grow with the data: no step holds every decoded example. Placement needs
        the duplicate resolution, a global result; a step taking it as a side input would make
        the runner buffer all its input until the resolution is complete (DirectRunner holds it
        in memory). So decoded examples are spilled to a TFRecord in the work folder as they are
        decoded, and read back one at a time once the resolution exists (``ReadSpill`` waits
        on the spill's file names and the resolution, both small). The splits are written here
        rather than by TFX's ``WriteSplit``, whose ``Reshuffle`` is a GroupByKey over every
        example; the order is mixed already (``mixed_order``, and Beam's reshuffled
        ``Create``)."""
        cfg = from_custom_config(_custom_config(exec_properties), "ImageExampleGen")
        result, splits, work = self._scan, self._splits, self._work_dir
        decoded = (
            pipeline
            | "Candidates" >> beam.Create(mixed_order(result.candidates), reshuffle=True)
            | "Batch" >> beam.BatchElements(min_batch_size=BATCH_MIN, max_batch_size=BATCH_MAX)
            | "Decode" >> beam.ParDo(_DecodeBatch(cfg.data.max_image_pixels, cfg.data.max_file_bytes)
                                     ).with_outputs(REJECTED_TAG, NOT_SERVEABLE_TAG, main="ok"))
        settings = duplicates.Settings.from_config(cfg.data)
        resolution = (decoded.ok
                      | "Member" >> beam.Map(lambda rec: rec[0])
                      | "FindDuplicates" >> FindDuplicates(settings, cfg.data.split_buckets,
                                                           result.splits))
        spilled = (decoded.ok
                   | "Spill" >> beam.Map(spill)
                   | "WriteSpill" >> beam.io.WriteToTFRecord(os.path.join(work, "decoded"),
                                                             file_name_suffix=".tfrecord"))
        placed = (spilled
                  | "ReadSpill" >> beam.FlatMap(read_spill)
                  | "Place" >> beam.ParDo(_Place(cfg.data.split_buckets, result.splits),
                                          resolution=beam.pvalue.AsSingleton(resolution)
                                          ).with_outputs(REJECTED_TAG, main="ok"))
        _ = ((decoded[REJECTED_TAG], placed[REJECTED_TAG])
             | "AllRejected" >> beam.Flatten()
             | "WriteRejected" >> beam.io.WriteToText(
                 os.path.join(work, "rejected"), file_name_suffix=".jsonl"))
        _ = (resolution
             | "DuplicatesSection" >> beam.Map(
                 lambda res: json.dumps(duplicates.summary(res.groups, settings),
                                        ensure_ascii=False))
             | "WriteDuplicates" >> beam.io.WriteToText(
                 os.path.join(work, "duplicates"), file_name_suffix=".json"))
        _ = decoded[NOT_SERVEABLE_TAG] | "WriteNotServeable" >> beam.io.WriteToText(
            os.path.join(work, "not_serveable"), file_name_suffix=".jsonl")
        _ = (placed.ok
             | "Key" >> beam.Map(lambda rec: json.dumps([rec[0], rec[1]]))
             | "Count" >> beam.combiners.Count.PerElement()
             | "Format" >> beam.MapTuple(lambda key, n: json.dumps([*json.loads(key), n]))
             | "WriteCounts" >> beam.io.WriteToText(os.path.join(work, "counts"),
                                                     file_name_suffix=".jsonl"))
        _ = (placed.ok
             | "FingerprintLine" >> beam.Map(fingerprint_line)
             | "AllLines" >> beam.combiners.ToList()
             | "Digest" >> beam.Map(digest_lines)
             | "WriteFingerprint" >> beam.io.WriteToText(os.path.join(work, "fingerprint"),
                                                         file_name_suffix=".txt"))
        parts = placed.ok | "Split" >> beam.Partition(
            lambda rec, _n: splits.index(rec[0]), len(splits))
        for i, name in enumerate(splits):
            _ = (parts[i]
                 | f"Example{name}" >> beam.Map(lambda rec: rec[4])
                 | f"Write{name}" >> beam.io.WriteToTFRecord(
                     os.path.join(artifact_utils.get_split_uri([self._examples], name), SPLIT_FILE),
                     file_name_suffix=".gz"))
        return {}

    def Do(self, input_dict, output_dict, exec_properties) -> None:
        examples = artifact_utils.get_single_instance(
            output_dict[standard_component_specs.EXAMPLES_KEY])
        self._work_dir = os.path.join(examples.uri, _WORK_DIR)
        cfg = from_custom_config(_custom_config(exec_properties), "ImageExampleGen")
        self._scan = scan(cfg, exec_properties[standard_component_specs.INPUT_BASE_KEY])
        self._splits = output_splits(self._scan, cfg)
        self._examples = examples
        exec_properties = {**exec_properties,
                           standard_component_specs.OUTPUT_CONFIG_KEY: _output_config(self._splits)}
        try:
            super().Do(input_dict, output_dict, exec_properties)
            summary = report.build(self._scan, self._work_dir)
            report.write(summary, examples.uri)
            fingerprint = _read_fingerprint(self._work_dir)
            tf.io.gfile.rmtree(self._work_dir)
        except Exception as err:  # noqa: BLE001 - only a full disk is re-worded, see below
            cause = disk_cause(err)
            if cause is None:
                raise
            _empty(examples.uri)
            raise IngestionWriteError(
                f"ingestion could not write the examples to {examples.uri} ({cause}); its "
                "partial output was removed and nothing was ingested: free space (or raise the "
                "limit) and run again") from None
        examples.set_string_custom_property(DATA_FINGERPRINT, fingerprint)
        examples.set_int_custom_property("found", summary["found"])
        examples.set_int_custom_property("ingested", summary["ingested"])
        examples.set_int_custom_property("rejected", len(summary["rejected"]))
        examples.set_int_custom_property("ignored", len(summary["ignored"]))
        report.check(summary)


class IngestionWriteError(OSError):
    """The examples could not be written (disk full, file too large): nothing was ingested."""


def _empty(folder: str) -> None:
    """Remove everything under ``folder`` (this execution's own output), keeping the folder."""
    for name in tf.io.gfile.listdir(folder):
        path = os.path.join(folder, name)
        if tf.io.gfile.isdir(path):
            tf.io.gfile.rmtree(path)
        else:
            tf.io.gfile.remove(path)


def _read_fingerprint(work_dir: str) -> str:
    """The digest the Beam pipeline wrote (one line)."""
    for path in tf.io.gfile.glob(os.path.join(work_dir, "fingerprint*")):
        with tf.io.gfile.GFile(path) as fh:
            text = fh.read().strip()
        if text:
            return text
    return digest_lines([])


def _output_config(splits: List[str]) -> str:
    """The Output config naming our splits, so the base executor lays out those folders."""
    output = example_gen_pb2.Output(split_config=example_gen_pb2.SplitConfig(splits=[
        example_gen_pb2.SplitConfig.Split(name=name, hash_buckets=1) for name in splits]))
    return proto_utils.proto_to_json(output)


def _custom_config(exec_properties: Dict[str, Any]) -> Dict[str, Any]:
    """Unpack the Struct that ``component.pack_custom_config`` put in ExampleGen's CustomConfig."""
    raw = exec_properties.get(standard_component_specs.CUSTOM_CONFIG_KEY)
    if not raw:
        return {}
    config = example_gen_pb2.CustomConfig()
    proto_utils.json_to_proto(raw, config)
    struct = struct_pb2.Struct()
    config.custom_config.Unpack(struct)
    return json_format.MessageToDict(struct)
