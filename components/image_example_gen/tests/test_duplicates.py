"""Near-duplicates and label conflicts, with copies generated from the bundled sample's real
images (JPEG quality 70, resized +-10 %, PNG -> JPEG) and a planted label conflict."""
import io
import shutil
from pathlib import Path

import pytest
from PIL import Image

from lensflow.components.image_example_gen import duplicates, report
from lensflow.components.image_example_gen.decode import load_image
from lensflow.components.image_example_gen.tests.test_executor import read_examples, run_executor
from lensflow.components.transform import features
from lensflow.pipeline.config import SAMPLE_DATA, ConfigError, LensflowConfig

COPIES = {
    "jpeg_q70": lambda im: _encode(im, "JPEG", quality=70),
    "resized_up_10pct": lambda im: _encode(_scaled(im, 1.1), "PNG"),
    "resized_down_10pct": lambda im: _encode(_scaled(im, 0.9), "PNG"),
    "png_to_jpeg": lambda im: _encode(im, "JPEG", quality=90),
}
SUFFIX = {"JPEG": ".jpg", "PNG": ".png"}


def _encode(image, fmt, **options):
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue(), SUFFIX[fmt]


def _scaled(image, factor):
    width, height = image.size
    return image.resize((round(width * factor), round(height * factor)), Image.BICUBIC)


def sample(label, count, start=0):
    """Real images of one class of the bundled sample, in file-name order."""
    return sorted((SAMPLE_DATA / label).glob("*.png"))[start:start + count]


def member(path, rel, label, split=None):
    image = load_image(str(path))
    phash, thumb = duplicates.fingerprint(image.pixels)
    return duplicates.Member(rel, label, split, image.sha256, phash, thumb)


def pairs_by_buckets(members, settings):
    """What the Beam step computes: pairs from every bucket, deduplicated."""
    buckets = {}
    for m in members:
        for key in duplicates.bucket_keys(m, settings):
            buckets.setdefault(key, []).append(m)
    return {(e.a.path, e.b.path): e for bucket in buckets.values()
            for e in duplicates.close_pairs(bucket, settings)}


@pytest.fixture(scope="module")
def sample_members():
    return [member(p, f"{p.parent.name}/{p.name}", p.parent.name)
            for p in sorted(SAMPLE_DATA.glob("*/*.png"))]


def test_copies_of_real_images_are_found(tmp_path):
    """Every 10th sample image, copied four ways, read back through ingestion's decode."""
    settings = duplicates.Settings()
    originals = sorted(SAMPLE_DATA.glob("*/*.png"))[::10]
    found = {kind: 0 for kind in COPIES}
    for index, path in enumerate(originals):
        source = member(path, "original", "x")
        for kind, make in COPIES.items():
            data, suffix = make(Image.open(path))
            copy_path = tmp_path / f"{index}_{kind}{suffix}"
            copy_path.write_bytes(data)
            copy = member(copy_path, "copy", "x")
            found[kind] += bool(list(duplicates.close_pairs([source, copy], settings)))
    assert all(n >= 0.97 * len(originals) for n in found.values()), (found, len(originals))


def test_distinct_sample_images_are_not_grouped(sample_members):
    """The false-positive check: 1,500 real garments, ten classes, many alike; none is a copy."""
    pairs = pairs_by_buckets(sample_members, duplicates.Settings())
    assert pairs == {}


def test_hash_bands_miss_no_pair_within_the_distance(sample_members):
    """Bucketing by bands finds exactly the pairs a full comparison finds (pigeonhole)."""
    loose = duplicates.Settings(max_distance=6, min_similarity=0.5)
    members = sample_members[::3]
    brute = {(e.a.path, e.b.path) for e in duplicates.close_pairs(members, loose)}
    assert brute, "the check needs some pairs within the distance"
    assert set(pairs_by_buckets(members, loose)) == brute


def test_byte_identical_files_group_even_without_near_duplicate_detection(sample_members):
    first = sample_members[0]
    twin = duplicates.Member("elsewhere/twin.png", first.label, None, first.sha256, first.phash,
                             first.thumb)
    exact_only = duplicates.Settings(near=False)
    assert set(pairs_by_buckets([first, twin, *sample_members[1:50]], exact_only)) == {
        (first.path, twin.path)}


def _copies_of_one_image(tmp_path, labels_and_splits):
    """Members that are copies of one real bag image, with the given (label, split) each."""
    path = sample("bag", 1)[0]
    out = []
    for number, (label, split) in enumerate(labels_and_splits):
        data, suffix = list(COPIES.values())[number % len(COPIES)](Image.open(path))
        copy_path = tmp_path / f"copy{number}{suffix}"
        copy_path.write_bytes(data)
        out.append(member(copy_path, f"{split or 'all'}/{label}/copy{number}{suffix}", label,
                          split))
    return out


def _resolve(members, **settings):
    settings = duplicates.Settings(**settings)
    edges = duplicates.close_pairs(members, settings)
    return duplicates.resolve(edges, settings, lambda split, key: split or f"bucket-{key[:6]}")


@pytest.mark.parametrize("policy, dropped_labels", [
    ("reject", ["bag", "bag", "coat"]), ("majority", ["coat"]), ("keep", [])])
def test_label_conflict_policies(tmp_path, policy, dropped_labels):
    members = _copies_of_one_image(tmp_path, [("bag", None), ("bag", None), ("coat", None)])
    result = _resolve(members, label_conflicts=policy)
    [group] = result.groups
    assert group["label_conflict"] and group["labels"] == {"bag": 2, "coat": 1}
    dropped = [m for m in members if result.verdicts[m.path].dropped]
    assert sorted(m.label for m in dropped) == dropped_labels
    for m in dropped:
        assert "label conflict" in result.verdicts[m.path].dropped
    kept_splits = {e["split"] for e in group["members"] if not e["dropped"]}
    assert len(kept_splits) == (1 if dropped_labels != ["bag", "bag", "coat"] else 0)


def test_a_tie_has_no_majority_and_drops_every_copy(tmp_path):
    members = _copies_of_one_image(tmp_path, [("bag", None), ("coat", None)])
    result = _resolve(members, label_conflicts="majority")
    assert all("no label has a majority" in result.verdicts[m.path].dropped for m in members)


@pytest.mark.parametrize("policy, kept_split", [
    ("drop_held_out", "train"), ("drop_train", "test"), ("keep", None)])
def test_copies_across_given_splits(tmp_path, policy, kept_split):
    members = _copies_of_one_image(tmp_path, [("bag", "train"), ("bag", "test"), ("bag", "test")])
    result = _resolve(members, presplit=policy)
    [group] = result.groups
    kept = {m.split for m in members if not result.verdicts[m.path].dropped}
    assert kept == ({kept_split} if kept_split else {"train", "test"})
    assert group["straddles_splits"] == (kept_split is None)
    for m in members:
        reason = result.verdicts[m.path].dropped
        assert (reason is not None) == (m.split != kept_split and kept_split is not None)
        if reason:
            assert f"data.presplit_duplicates={policy}" in reason
    section = duplicates.summary(result.groups, duplicates.Settings(presplit=policy))
    assert any("straddle" in w for w in duplicates.warnings(section)) == (policy == "keep")


def test_policies_are_validated_by_the_config():
    with pytest.raises(ConfigError, match="data.label_conflicts='vote'"):
        LensflowConfig().replace(**{"data.label_conflicts": "vote"})
    with pytest.raises(ConfigError, match="data.presplit_duplicates"):
        LensflowConfig().replace(**{"data.presplit_duplicates": "drop_test"})
    with pytest.raises(ConfigError, match="data.duplicate_hash_distance"):
        LensflowConfig().replace(**{"data.duplicate_hash_distance": 40})


def _tree_with_copies(root: Path):
    """Eight real images in each of three classes, four kinds of copy, and a planted conflict:
    a bag re-encoded twice under 'bag' and once under 'coat'. Returns the expected groups."""
    for label in ("bag", "coat", "sneaker"):
        (root / label).mkdir(parents=True)
        for path in sample(label, 8):
            shutil.copy(path, root / label / path.name)
    bags, sneakers = sample("bag", 4), sample("sneaker", 1)
    expected = []
    for source, (kind, make) in zip([*bags[:3], sneakers[0]], COPIES.items()):
        data, suffix = make(Image.open(source))
        rel = f"{source.parent.name}/{kind}{suffix}"
        (root / rel).write_bytes(data)
        expected.append({f"{source.parent.name}/{source.name}", rel})
    conflict = {f"bag/{bags[3].name}", "bag/conflict_q70.jpg", "coat/conflict_q90.jpg"}
    (root / "bag" / "conflict_q70.jpg").write_bytes(COPIES["jpeg_q70"](Image.open(bags[3]))[0])
    (root / "coat" / "conflict_q90.jpg").write_bytes(
        COPIES["png_to_jpeg"](Image.open(bags[3]))[0])
    return expected, conflict


def _written(examples):
    """{path: (split, label)} of every example written."""
    out = {}
    for split in ("train", "eval", "test"):
        for ex in read_examples(examples, split):
            feat = ex.features.feature
            out[feat[features.PATH_KEY].bytes_list.value[0].decode()] = (
                split, feat[features.LABEL_KEY].bytes_list.value[0].decode())
    return out


@pytest.mark.parametrize("policy", ["reject", "majority"])
def test_ingestion_groups_copies_into_one_split_and_applies_the_conflict_policy(tmp_path, policy):
    expected, conflict = _tree_with_copies(tmp_path / "data")
    dropped = conflict if policy == "reject" else {"coat/conflict_q90.jpg"}
    cfg = LensflowConfig().replace(**{"data.split_buckets": {"train": 1, "eval": 1, "test": 1},
                                      "data.label_conflicts": policy})
    examples = run_executor(tmp_path / "data", tmp_path / "out", cfg)
    summary = report.read(examples.uri)
    written = _written(examples)
    section = summary["duplicates"]
    groups = [{m["path"] for m in g["members"]} for g in section["groups"]]
    assert sorted(map(sorted, groups)) == sorted(map(sorted, [*expected, conflict]))
    for group in [*expected, conflict - dropped] if policy == "majority" else expected:
        assert len({written[path][0] for path in group}) == 1, group
    assert section["label_conflicts"] == 1 and section["dropped"] == len(dropped)
    rejected = {r["path"]: r["reason"] for r in summary["rejected"]}
    assert set(rejected) == dropped
    assert all("label conflict" in reason for reason in rejected.values())
    every_file = {p.relative_to(tmp_path / "data").as_posix()
                  for p in (tmp_path / "data").rglob("*.*")}
    assert set(written) == every_file - dropped
    assert summary["found"] == len(every_file) == summary["ingested"] + len(summary["rejected"])
    assert summary["ingested"] == 24 + 4 + 2 - len(dropped)
    assert any(f"1 duplicate group(s) carry more than one label (data.label_conflicts={policy}): "
               f"{len(dropped)} file(s) dropped" in w for w in summary["warnings"])


def test_presplit_copies_keep_to_train_and_the_test_copy_is_dropped(tmp_path):
    data = tmp_path / "data"
    for split, start in (("train", 0), ("test", 8)):
        for label in ("bag", "sneaker"):
            (data / split / label).mkdir(parents=True)
            for path in sample(label, 8, start):
                shutil.copy(path, data / split / label / path.name)
    leaked = sample("sneaker", 1)[0]
    (data / "test" / "sneaker" / "leaked_q70.jpg").write_bytes(
        COPIES["jpeg_q70"](Image.open(leaked))[0])
    cfg = LensflowConfig().replace(**{"data.split_buckets": {"train": 1, "eval": 1}})
    examples = run_executor(data, tmp_path / "out", cfg)
    summary = report.read(examples.uri)
    written = _written(examples)
    [group] = summary["duplicates"]["groups"]
    assert {m["path"] for m in group["members"]} == {f"train/sneaker/{leaked.name}",
                                                     "test/sneaker/leaked_q70.jpg"}
    [rejected] = summary["rejected"]
    assert rejected["path"] == "test/sneaker/leaked_q70.jpg"
    assert f"near-duplicate of train/sneaker/{leaked.name}" in rejected["reason"]
    assert "test/sneaker/leaked_q70.jpg" not in written
    assert any("1 file(s) dropped as copies of an image in another given split" in w
               for w in summary["warnings"])
    assert written[f"train/sneaker/{leaked.name}"][0] in ("train", "eval")
    assert summary["found"] == summary["ingested"] + 1 == 33


def test_batched_fingerprints_are_imagehash_phash_and_the_same_thumbnails():
    """``fingerprints`` (one DCT over the stacked batch) gives each image the 64-bit hash
    ``imagehash.phash`` gives it alone, and ``fingerprint``'s thumbnail; grey, RGB, flat and
    odd-sized images mixed in one batch."""
    import imagehash
    import numpy as np

    rng = np.random.default_rng(3)
    images = [load_image(str(p)).pixels for p in sorted(SAMPLE_DATA.glob("*/*.png"))[:40]]
    images += [rng.integers(0, 256, (37, 61, 3), dtype=np.uint8), np.zeros((5, 5), np.uint8),
               np.full((64, 48, 3), 200, np.uint8)]
    batch = duplicates.fingerprints(images)
    assert len(batch) == len(images)
    for pixels, (phash, thumb) in zip(images, batch):
        grey = Image.fromarray(pixels).convert("L")
        bits = imagehash.phash(grey).hash.flatten()
        assert phash == int.from_bytes(np.packbits(bits).tobytes(), "big")
        assert (phash, thumb) == duplicates.fingerprint(pixels)
        assert thumb == np.asarray(grey.resize((16, 16), Image.LANCZOS)).tobytes()
    assert duplicates.fingerprints([]) == []
