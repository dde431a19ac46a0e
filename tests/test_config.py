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
    again = from_custom_config({CUSTOM_CONFIG_KEY: cfg.to_json()}, "Trainer")
    assert again.to_dict() == cfg.to_dict() and again.home_dir == cfg.home_dir


def test_component_subsets_carry_only_their_keys():
    cfg = LensflowConfig().replace(**{"train.epochs": 9, "evaluation.top_k": 2})
    subset = json.loads(cfg.to_json(["train", "evaluation.top_k"]))
    assert set(subset) == {"train", "evaluation"} and subset["evaluation"] == {"top_k": 2}
    rebuilt = from_custom_config({CUSTOM_CONFIG_KEY: cfg.to_json(["train", "evaluation.top_k"])},
                                 "Trainer")
    assert rebuilt.train.epochs == 9 and rebuilt.evaluation.top_k == 2
    assert rebuilt.sections == ["evaluation", "train"]


def test_a_component_reading_a_key_it_was_not_given_fails_naming_it():
    """No silent defaults: a section or field outside the component's slice is an error."""
    cfg = LensflowConfig().replace(**{"image.size": 64})
    trainer = from_custom_config({CUSTOM_CONFIG_KEY: cfg.to_json(["train", "evaluation.top_k"])},
                                 "Trainer")
    with pytest.raises(ConfigError, match=r"Trainer was not given config section 'image'"):
        trainer.image.size
    with pytest.raises(ConfigError, match=r"Trainer was not given config key evaluation.min_accuracy"):
        trainer.evaluation.min_accuracy
    with pytest.raises(ConfigError, match=r"Trainer was not given config section 'home'"):
        trainer.home_dir


@pytest.mark.parametrize("raw,message", [
    ({"train": {"epochs": 0}}, "train.epochs"),
    ({"train": {"learning_rate": "1e-3x"}}, "train.learning_rate='1e-3x'"),
    ({"image": {"size": 4}}, "image.size=4"),
    ({"image": {"color_mode": "cmyk"}}, "image.color_mode='cmyk'; choose one of"),
    ({"drift": {"policy": "sometimes"}}, "drift.policy='sometimes'"),
    ({"image": {"sizes": 28}}, "image.sizes"),
    ({"evaluation": {"top_k": 0}}, "evaluation.top_k"),
])
def test_a_component_validates_its_own_sections_naming_the_key(raw, message):
    with pytest.raises(ConfigError, match=message.replace(".", r"\.").replace("(", r"\(")):
        from_custom_config({CUSTOM_CONFIG_KEY: json.dumps(raw)}, "Trainer")


def test_cross_section_rules_are_checked_once_for_the_whole_config():
    """compact_resnet's six stages need images of at least 32 px: the whole config is refused
    before a run, while the Trainer's slice (no image section) is not re-judged against the
    default 28 px, as it was when a component rebuilt the whole config with defaults."""
    deep = {"model.family": "compact_resnet", "model.widths": [8, 8, 8, 8, 8, 8],
            "model.depths": [1, 1, 1, 1, 1, 1]}
    with pytest.raises(ConfigError, match="image.size=16"):
        LensflowConfig().replace(**deep, **{"image.size": 16})
    ok = LensflowConfig().replace(**deep, **{"image.size": 64})
    trainer = from_custom_config({CUSTOM_CONFIG_KEY: ok.to_json(["model", "train"])}, "Trainer")
    assert trainer.model.widths == [8] * 6


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
    assert from_custom_config({CUSTOM_CONFIG_KEY: cfg.to_json()}, "Trainer").to_dict() == cfg.to_dict()


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
