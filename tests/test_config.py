"""The one config object: YAML + overrides, validation, and per-component subsets."""
import json
from pathlib import Path

import pytest

from lensflow.pipeline.config import (CUSTOM_CONFIG_KEY, ConfigError, LensflowConfig, from_custom_config,
                             load_config, validate)


def test_yaml_then_overrides_then_round_trip_through_custom_config(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  epochs: 7\nmodel:\n  family: filter_bank\n")
    cfg = load_config(str(path), {"train.batch_size": 8, "train.epochs": None})
    assert (cfg.train.epochs, cfg.train.batch_size, cfg.model.family) == (7, 8, "filter_bank")
    again = from_custom_config({CUSTOM_CONFIG_KEY: cfg.to_json()})
    assert again == cfg


def test_component_subsets_carry_only_their_keys():
    cfg = LensflowConfig().replace(**{"train.epochs": 9, "evaluation.top_k": 2})
    subset = json.loads(cfg.to_json(["train", "evaluation.top_k"]))
    assert set(subset) == {"train", "evaluation"} and subset["evaluation"] == {"top_k": 2}
    rebuilt = from_custom_config({CUSTOM_CONFIG_KEY: cfg.to_json(["train", "evaluation.top_k"])})
    assert rebuilt.train.epochs == 9 and rebuilt.evaluation.top_k == 2
    assert rebuilt.evaluation.min_accuracy == LensflowConfig().evaluation.min_accuracy


@pytest.mark.parametrize("key,value,message", [
    ("model.family", "resnet", "model.family"),
    ("image.color_mode", "cmyk", "image.color_mode"),
    ("evaluation.min_accuracy", 1.5, "min_accuracy"),
    ("data.split_buckets", {"train": 1}, "split_buckets"),
    ("serving_check.timeout_seconds", 0, "serving_check.timeout_seconds"),
    ("serving_check.timeout_seconds", "soon", "serving_check.timeout_seconds"),
    ("serving_check.images_per_class", 0, "serving_check.images_per_class"),
    ("serving_check.images_per_class", 50, "serving_check.images_per_class"),
    ("serving_check.enabled", "sometimes", "serving_check.enabled"),
    ("train.resume", "maybe", "train.resume"),
    ("train.resume_dir", "backups", r"train\.resume_dir='backups'; expected an absolute path"),
])
def test_invalid_values_name_the_field(key, value, message):
    with pytest.raises(ConfigError, match=message):
        LensflowConfig().replace(**{key: value})


def test_transfer_turns_normalisation_off_unless_set():
    assert LensflowConfig().effective_normalize is True
    transfer = LensflowConfig().replace(**{"model.family": "transfer"})
    assert transfer.effective_normalize is False
    assert transfer.replace(**{"image.normalize": True}).effective_normalize is True


def test_the_committed_recipe_loads_validates_and_round_trips_through_custom_config():
    root = Path(__file__).resolve().parents[1]
    cfg = load_config(str(root / "configs" / "fashion_mnist_best.yaml"))
    validate(cfg)
    assert (cfg.model.family, cfg.train.precision, cfg.model.flip_tta) == \
        ("compact_resnet", "auto", True)
    assert from_custom_config({CUSTOM_CONFIG_KEY: cfg.to_json()}) == cfg


@pytest.mark.parametrize("text,loaded", [
    ("train:\n  learning_rate: 1e-3\n", ("train", "learning_rate", 0.001)),
    ("image:\n  size: '64'\n", ("image", "size", 64)),
])
def test_yaml_values_are_converted_to_the_declared_type(tmp_path, text, loaded):
    path = tmp_path / "lensflow.yaml"
    path.write_text(text)
    section, key, value = loaded
    got = getattr(getattr(load_config(str(path)), section), key)
    assert got == value and type(got) is type(value)


@pytest.mark.parametrize("text,message", [
    ("model:\n  dropout: high\n", r"model\.dropout='high': Input should be a valid number"),
    ("model:\n  dropout: 1.5\n", r"model\.dropout=1\.5: Input should be less than 1"),
    ("train:\n  epochs: 2.5\n", r"train\.epochs=2\.5: .*valid integer"),
    ("model:\n  widths: [8, wide]\n", r"model\.widths\.1='wide'"),
    ("evaluation:\n  min_class_recall: -0.1\n", r"evaluation\.min_class_recall=-0\.1"),
    ("augment:\n  preset: heavy\n", r"augment\.preset='heavy'; choose one of none, light, standard"),
    ("train:\n  epochz: 3\n", r"unknown config key train\.epochz; known: .*learning_rate"),
])
def test_bad_yaml_values_name_the_dotted_key(tmp_path, text, message):
    path = tmp_path / "lensflow.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(str(path))


def test_set_option_reaches_any_key_and_named_flags_win():
    import click

    from lensflow.pipeline.cli_options import make_config

    cfg = make_config(None, None, ("train.weight_decay=5e-4", "model.widths=[8, 16]", "model.depths=[0, 1]",
                                   "train.epochs=7"), **{"train.epochs": 2})
    assert cfg.train.weight_decay == 5e-4 and cfg.model.widths == [8, 16]
    assert cfg.train.epochs == 2
    with pytest.raises(click.UsageError, match=r"model\.dropout='high'"):
        make_config(None, None, ("model.dropout=high",))
    with pytest.raises(click.UsageError, match="expected KEY=VALUE"):
        make_config(None, None, ("train.epochs",))
    with pytest.raises(click.UsageError, match="unknown config key 'train.epochz'"):
        make_config(None, None, ("train.epochz=3",))
