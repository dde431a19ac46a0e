"""``model.family: auto``: the model is chosen from what the data is, said in the summary and
report, and anything the user set wins."""
import json

import numpy as np
import pytest
from PIL import Image

from lensflow.components.report.markdown import summary as markdown_summary
from lensflow.components.trainer import choice
from lensflow.pipeline import auto_model
from lensflow.pipeline.cli_options import explicit_keys
from lensflow.pipeline.config import load_config
from lensflow.pipeline.registry import AUTO, AUTO_FALLBACK
from lensflow.pipeline.summary import format_text


def write_images(root, size, mode, per_class=4, classes=("a", "b")):
    """Class folders of random images: ``mode`` 'L' (grey), 'RGB' or 'RGBA' (colour)."""
    rng = np.random.default_rng(0)
    for label in classes:
        (root / label).mkdir(parents=True)
        for index in range(per_class):
            channels = {"L": 1, "RGB": 3, "RGBA": 4}[mode]
            pixels = rng.integers(0, 256, (size[1], size[0], channels), dtype=np.uint8)
            if mode == "RGBA":
                pixels[..., 3] = 255
            image = Image.fromarray(pixels.squeeze(-1) if channels == 1 else pixels, mode)
            image.save(root / label / f"{index}.png")
    return root


def config(data, **overrides):
    return load_config(None, {"data.path": str(data), **overrides})


def test_auto_is_the_default_and_a_choice():
    assert load_config().model.family == AUTO
    with pytest.raises(Exception, match="model.family='nope'; choose one of auto, baseline_cnn"):
        load_config(None, {"model.family": "nope"})


def test_tiny_grey_images_get_the_small_cnn(tmp_path):
    cfg, record = auto_model.resolve(config(write_images(tmp_path / "d", (28, 28), "L")))
    assert (cfg.model.family, cfg.image.size, cfg.image.color_mode) == \
        ("baseline_cnn", 28, "grayscale")
    assert record["source"] == "auto"
    assert "0% in colour" in record["reason"] and "grey images" in record["reason"]


def test_colour_images_of_64_px_or_more_get_transfer(tmp_path):
    data = tmp_path / "d"
    write_images(data, (80, 72), "RGB", classes=("a",))
    write_images(data, (100, 120), "RGBA", classes=("b",))
    cfg, record = auto_model.resolve(config(data))
    look = auto_model.look(config(data))
    assert (look.sampled, look.colour_share, look.short_side) == (8, 1.0, 86)
    problem = auto_model._weights_problem(config(data))
    if problem is None:  # the backbone's ImageNet weights are on this machine
        assert (cfg.model.family, cfg.image.size, cfg.image.color_mode) == ("transfer", 96, "rgb")
        assert "transfer with efficientnet_lite0 at 96 px" in record["reason"]
    else:
        assert cfg.model.family == AUTO_FALLBACK and problem in record["reason"]
    settings, reason = auto_model.decide(look, config(data))
    assert settings == {"model.family": "transfer", "image.size": 96, "image.color_mode": "rgb"}
    settings, reason = auto_model.decide(look, config(data), weights_problem="no weights here")
    assert settings["model.family"] == AUTO_FALLBACK and "no weights here" in reason


def test_small_colour_images_get_the_small_cnn_in_colour(tmp_path):
    cfg, record = auto_model.resolve(config(write_images(tmp_path / "d", (32, 32), "RGB")))
    assert (cfg.model.family, cfg.image.size, cfg.image.color_mode) == ("baseline_cnn", 32, "rgb")
    assert "smaller than 64 px" in record["reason"]


def test_grey_pixels_saved_as_rgb_count_as_grey(tmp_path):
    data = tmp_path / "d"
    for label in ("a", "b"):
        (data / label).mkdir(parents=True)
        grey = np.random.default_rng(1).integers(0, 256, (90, 90), dtype=np.uint8)
        Image.fromarray(np.stack([grey] * 3, -1), "RGB").save(data / label / "x.png")
    cfg, _ = auto_model.resolve(config(data))
    assert (cfg.model.family, cfg.image.color_mode, cfg.image.size) == \
        ("baseline_cnn", "grayscale", 64)


def test_an_explicit_family_or_image_setting_wins(tmp_path):
    data = write_images(tmp_path / "d", (28, 28), "L")
    cfg, record = auto_model.resolve(config(data, **{"model.family": "filter_bank"}))
    assert cfg.model.family == "filter_bank" and record["source"] == "config"
    cfg, record = auto_model.resolve(config(data, **{"image.size": 20}))
    assert (cfg.model.family, cfg.image.size) == ("baseline_cnn", 20)
    assert "kept as set: image.size=20" in record["reason"]
    # the CLI knows which keys were set even when they equal the defaults
    colour = write_images(tmp_path / "c", (32, 32), "RGB")
    keys = explicit_keys(None, ("image.color_mode=grayscale",), **{"model.family": None})
    assert keys == {"image.color_mode"}
    cfg, record = auto_model.resolve(config(colour, **{"image.color_mode": "grayscale"}), keys)
    assert (cfg.image.color_mode, cfg.image.size) == ("grayscale", 32)
    yaml_file = tmp_path / "c.yaml"
    yaml_file.write_text("image:\n  size: 28\nmodel:\n  family: auto\n")
    assert explicit_keys(str(yaml_file)) == {"image.size", "model.family"}


def test_data_that_cannot_be_looked_at_or_is_not_here_gets_the_small_cnn(tmp_path):
    cfg, record = auto_model.resolve(config(tmp_path / "missing"))
    assert cfg.model.family == AUTO_FALLBACK and "could not be sampled" in record["reason"]
    colour = write_images(tmp_path / "c", (80, 80), "RGB")
    cfg, record = auto_model.resolve(config(colour), offline=True)
    assert cfg.model.family == AUTO_FALLBACK and "not read when compiling" in record["reason"]


def test_the_choice_reaches_the_trainer_and_the_summary_says_why(tmp_path):
    from lensflow.pipeline.pipeline import create_pipeline

    data = write_images(tmp_path / "d", (28, 28), "L")
    cfg = config(data, home=str(tmp_path / "home"))
    trainer = next(c for c in create_pipeline(cfg).components if c.id == "Trainer")
    custom = json.loads(trainer.exec_properties["custom_config"])
    assert json.loads(custom["lensflow_config"])["model"]["family"] == "baseline_cnn"
    record = choice.record_for_training(custom, load_config(None, {"model.family":
                                                                   "baseline_cnn"}))
    choice.write(str(tmp_path), record)
    assert choice.read(str(tmp_path)) == record
    text = format_text({"run_id": "r", "model_choice": record})
    assert "model: baseline_cnn, 28 px grayscale; chosen from the data: " in text
    assert "grey images" in text
    markdown = markdown_summary({"run_id": "r", "summary": {"model_choice": record},
                                 "blessed": None, "pushed_model_dir": None, "errors": {}})
    assert "- model: baseline_cnn, 28 px grayscale; chosen from the data" in markdown
    tuned = choice.record_for_training(custom, load_config(None, {"model.family": "filter_bank"}))
    assert tuned["source"] == "tuner" and tuned["family"] == "filter_bank"
    unresolved = choice.record_for_training({}, load_config())  # a Trainer run outside a pipeline
    assert (unresolved["family"], unresolved["source"]) == (AUTO_FALLBACK, "config")


def test_the_shared_run_on_the_sample_chose_the_small_cnn_and_says_why(e2e):
    made = e2e.summary["model_choice"]
    assert (made["family"], made["image_size"], made["color_mode"], made["source"]) == \
        ("baseline_cnn", 28, "grayscale", "auto")
    assert "grey images" in made["reason"]
    with open(e2e.summary["report_uri"], encoding="utf-8") as fh:
        html = fh.read()
    assert 'id="model-choice"' in html and "chosen from the data" in html
