"""``lensflow compare`` without running the pipeline: variants, subset selection, aggregation,
parameter counting and the command line."""
import os
import statistics

import pytest
from click.testing import CliRunner
from PIL import Image

from lensflow.components.image_example_gen.executor import assign_split, output_splits
from lensflow.components.image_example_gen.scan import DatasetError, scan_directory, scan_manifest
from lensflow.components.transform import augment
from lensflow.pipeline.compare import subset as compare_subset
from lensflow.pipeline.compare.run import ComparePlan, base_config, pipeline_name
from lensflow.pipeline.compare.stats import aggregate, execution_counts, recall_spread
from lensflow.pipeline.compare.variants import (FINE_TUNE_LAYERS, VARIANTS, parse_variants,
                                       resolved_overrides, variant_config)
from lensflow.pipeline.config import ConfigError, LensflowConfig, load_config
from lensflow.pipeline.pipeline import TRAINER_KEYS, evaluation_split, transform_config

CLASSES = ("boot", "coat", "shirt")


def write_images(folder, count, start=0):
    """``count`` distinct 8x8 grey PNGs (distinct bytes, so distinct content hashes)."""
    os.makedirs(folder, exist_ok=True)
    for i in range(start, start + count):
        image = Image.new("L", (8, 8), color=i % 256)
        image.putpixel((1, 1), (i // 256) % 256)
        image.save(os.path.join(folder, f"{i:04d}.png"))


@pytest.fixture
def class_tree(tmp_path):
    root = tmp_path / "folders"
    for k, name in enumerate(CLASSES):
        write_images(str(root / name), 60, start=100 * k)
    return str(root)


@pytest.fixture
def presplit_tree(tmp_path):
    root = tmp_path / "presplit"
    for k, name in enumerate(CLASSES):
        write_images(str(root / "train" / name), 40, start=100 * k)
        write_images(str(root / "test" / name), 7, start=100 * k + 50)
    return str(root)


# ---- variants ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_every_variant_is_a_valid_config_that_changes_only_trainer_settings(name):
    user = LensflowConfig().replace(**{"train.epochs": 5, "augment.rotation": 0.2})
    cfg = variant_config(user, name)
    assert LensflowConfig.from_dict(cfg.to_dict()) == cfg
    sections = {key.split(".")[0] for key in TRAINER_KEYS}
    assert {key.split(".")[0] for key in VARIANTS[name].overrides} <= sections
    assert cfg.to_json(["data"]) == user.to_json(["data"])
    if cfg.model.family != "transfer":
        assert transform_config(cfg) == transform_config(user)
    effective = augment.resolve(cfg.augment)
    assert (effective != {}) == (name == "augment"), effective


def test_transfer_variants_freeze_then_fine_tune_for_the_users_epochs():
    from lensflow.components.trainer.backbones import list_backbones

    user = load_config(None, {"train.epochs": 4})
    frozen, tuned = (variant_config(user, n) for n in ("transfer_frozen", "transfer_finetuned"))
    for cfg in (frozen, tuned):
        assert (cfg.model.family, cfg.model.weights) == ("transfer", "imagenet")
        assert cfg.model.backbone in {b["name"] for b in list_backbones(cfg.weights_cache_dir)}
        assert cfg.effective_normalize is False
    assert frozen.train.fine_tune_epochs == 0
    assert (tuned.train.fine_tune_epochs, tuned.model.fine_tune_layers) == (4, FINE_TUNE_LAYERS)
    assert resolved_overrides(user, "transfer_finetuned")["train.fine_tune_epochs"] == 4


def test_augment_variant_respects_forbidden_orientation_changes():
    user = load_config(None, {"augment.allow_orientation_changes": False})
    effective = augment.resolve(variant_config(user, "augment").augment)
    assert effective and not {"horizontal_flip", "vertical_flip", "rotation"} & set(effective)
    assert "horizontal_flip" in augment.resolve(variant_config(LensflowConfig(), "augment").augment)


def test_seeds_are_offset_from_the_users_base_seed():
    user = load_config(None, {"train.seed": 7, "augment.seed": 100})
    cfg = variant_config(user, "filter_init", 2)
    assert (cfg.train.seed, cfg.augment.seed, cfg.model.filter_mode) == (9, 102, "init")


def test_variant_names_are_checked():
    assert parse_variants(" filter_fixed,baseline ") == ["filter_fixed", "baseline"]
    with pytest.raises(ConfigError, match="unknown variant.*resnet.*choose from baseline"):
        parse_variants("baseline,resnet")
    with pytest.raises(ConfigError, match="listed twice: baseline"):
        parse_variants("baseline,augment,baseline")


# ---- subset -----------------------------------------------------------------------------------

def test_class_folder_subset_is_balanced_seeded_and_holds_out_the_runs_test_split(class_tree):
    buckets = LensflowConfig().data.split_buckets
    scan = scan_directory(class_tree)
    subset = compare_subset.select(scan, 31, seed=3, buckets=buckets)
    counts = subset.counts()
    assert sorted(counts["train"].values()) == [10, 10, 11] and sum(counts["train"].values()) == 31
    assert sum(counts["eval"].values()) == compare_subset.eval_count(31, 3, buckets) == 4
    expected_test = sorted(c.path for c in scan.candidates if assign_split(
        None, compare_subset.file_sha256(c.path), buckets, []) == "test")
    assert expected_test and sorted(p for p, _, s in subset.rows if s == "test") == expected_test
    paths = [p for p, _, _ in subset.rows]
    assert len(paths) == len(set(paths)), "an image landed in two splits"
    assert compare_subset.select(scan, 31, seed=3, buckets=buckets).rows == subset.rows
    assert compare_subset.select(scan, 31, seed=4, buckets=buckets).rows != subset.rows
    assert "content-hash 'test' bucket" in subset.held_out_source


def test_presplit_subset_keeps_the_whole_test_split_and_draws_only_from_train(presplit_tree):
    subset = compare_subset.select(scan_directory(presplit_tree), 12, seed=0,
                                   buckets={"train": 8, "eval": 1, "test": 1})
    test_paths = {p for p, _, s in subset.rows if s == "test"}
    assert len(test_paths) == 21 and all("/test/" in p for p in test_paths)
    assert all("/train/" in p for p, _, s in subset.rows if s != "test")
    assert subset.totals() == {"eval": 3, "test": 21, "train": 12}
    assert subset.held_out_source == "the data's 'test' split"


def test_too_small_a_class_is_taken_whole_with_a_warning(presplit_tree):
    subset = compare_subset.select(scan_directory(presplit_tree), 150, seed=0,
                                   buckets={"train": 8, "eval": 1, "test": 1})
    assert subset.totals()["train"] == 120
    assert any("has 40 images in the pool, 50 wanted" in w for w in subset.warnings)


def test_subset_manifest_reads_back_with_its_splits_and_is_evaluated_on_test(presplit_tree,
                                                                               tmp_path):
    cfg = load_config(None, {"data.path": presplit_tree, "home": str(tmp_path / "home"),
                             "data.split_buckets": {"train": 8, "eval": 1}})
    base, subset = base_config(cfg, ComparePlan(["baseline"], 1, 12), str(tmp_path / "out"))
    assert base.data.manifest == str(tmp_path / "out" / compare_subset.MANIFEST_FOLDER /
                                     compare_subset.MANIFEST_NAME)
    assert os.listdir(os.path.dirname(base.data.manifest)) == [compare_subset.MANIFEST_NAME]
    scan = scan_manifest(base.data.manifest)
    assert not scan.skipped
    assert {s: sum(c.split == s for c in scan.candidates) for s in scan.splits} == \
        subset.totals()
    assert output_splits(scan, base) == ["eval", "test", "train"]
    assert evaluation_split(base) == "test"
    assert base.serving_dir == str(tmp_path / "out" / "serving")
    assert base.pipeline_name == pipeline_name(cfg, 12) != pipeline_name(cfg, 13)
    assert base.pipeline_name.startswith("lensflow-compare-")


def test_data_without_a_split_to_hold_out_is_refused(tmp_path):
    for name in CLASSES:
        write_images(str(tmp_path / "train" / name), 3)
    with pytest.raises(DatasetError, match="no 'test' or 'eval' split"):
        compare_subset.select(scan_directory(str(tmp_path)), 3, 0, {"train": 8, "eval": 1})


# ---- aggregation ------------------------------------------------------------------------------

def record(variant, seed, accuracy, low, high, seconds, params=1000, blessed=True):
    return {"variant": variant, "seed": seed, "accuracy": accuracy, "recall_min": low,
            "recall_max": high, "trainer_seconds": seconds, "params": params, "blessed": blessed,
            "executions": {"Transform": "COMPLETE" if (variant, seed) == ("a", 1) else "CACHED",
                           "Trainer": "COMPLETE"}}


def test_aggregate_means_std_over_seeds_in_the_requested_order():
    runs = [record("a", 1, 0.80, 0.5, 0.9, 10.0), record("b", 1, 0.70, 0.2, 0.95, 30.0, 5, False),
            record("a", 2, 0.84, 0.6, 0.95, 14.0), record("a", 3, 0.86, 0.4, 1.0, 12.0)]
    rows = aggregate(runs, ["b", "a", "missing"])
    assert [r["variant"] for r in rows] == ["b", "a"]
    b, a = rows
    assert a["n"] == 3 and a["seeds"] == [1, 2, 3] and a["accuracy"] == [0.80, 0.84, 0.86]
    assert a["accuracy_mean"] == pytest.approx(0.8333333333)
    assert a["accuracy_std"] == pytest.approx(statistics.stdev([0.80, 0.84, 0.86]))
    assert (a["recall_min_mean"], a["recall_max_mean"]) == (pytest.approx(0.5), pytest.approx(0.95))
    assert a["trainer_seconds_mean"] == pytest.approx(12.0)
    assert (a["params"], a["blessed"]) == (1000, 3)
    assert b["n"] == 1 and b["accuracy_std"] is None and b["blessed"] == 0 and b["params"] == 5
    counts = execution_counts(runs)
    assert counts["Transform"] == {"COMPLETE": 1, "CACHED": 3}
    assert counts["Trainer"] == {"COMPLETE": 4}


def test_recall_spread_names_the_classes():
    spread = recall_spread({"bag": 0.9, "coat": 0.4, "shirt": None, "boot": 0.95})
    assert spread == {"recall_min": 0.4, "recall_max": 0.95, "recall_min_class": "coat",
                      "recall_max_class": "boot"}
    assert recall_spread({"bag": None})["recall_min"] is None


# ---- parameter count and CLI ------------------------------------------------------------------

def test_params_are_read_from_the_saved_model_without_loading_it(tmp_path):
    import tensorflow as tf

    from lensflow.pipeline.compare.records import count_params

    inputs = tf.keras.Input((8, 8, 1))
    x = tf.keras.layers.Conv2D(4, 3)(inputs)
    x = tf.keras.layers.BatchNormalization()(x)
    outputs = tf.keras.layers.Dense(3, activation="softmax")(tf.keras.layers.Flatten()(x))
    model = tf.keras.Model(inputs, outputs)
    model.save(str(tmp_path / "model"), save_format="tf")
    assert count_params(str(tmp_path / "model")) == model.count_params() == 491
    assert count_params(str(tmp_path)) is None


def test_cli_rejects_unknown_variants_before_running_anything(tmp_path):
    from lensflow.pipeline.cli import main

    result = CliRunner().invoke(main, ["compare", "--home", str(tmp_path), "--variants",
                                       "baseline,nope", "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "unknown variant(s) nope" in result.output
    assert not (tmp_path / "out").exists() and not (tmp_path / "metadata").exists()


def test_trainer_time_comes_from_the_execution_that_trained_not_a_cache_hit():
    import time

    from ml_metadata import metadata_store
    from ml_metadata.proto import metadata_store_pb2 as pb

    from lensflow.pipeline.compare.records import producer_seconds

    config = pb.ConnectionConfig()
    config.fake_database.SetInParent()
    store = metadata_store.MetadataStore(config)
    type_id = store.put_execution_type(pb.ExecutionType(name="Trainer"))
    model_type = store.put_artifact_type(pb.ArtifactType(name="Model"))
    [model_id] = store.put_artifacts([pb.Artifact(type_id=model_type, uri="/m")])
    trained = pb.Execution(type_id=type_id, last_known_state=pb.Execution.RUNNING)
    [trained.id] = store.put_executions([trained])
    time.sleep(0.3)
    trained.last_known_state = pb.Execution.COMPLETE
    store.put_executions([trained])
    [cached_id] = store.put_executions([pb.Execution(type_id=type_id,
                                                     last_known_state=pb.Execution.CACHED)])
    store.put_events([pb.Event(artifact_id=model_id, execution_id=e, type=pb.Event.OUTPUT)
                      for e in (cached_id, trained.id)])
    assert producer_seconds(store, model_id) >= 0.3
