"""Which model was trained and why (``model_choice.json`` in the Trainer's model run).

The record is made before the pipeline is built (``lensflow.pipeline.auto_model``: chosen from
the data for ``model.family: auto``, or as configured) and handed to the Trainer in its
``custom_config``; the Trainer writes it beside the training history so the run summary and the
report can say what was trained and why, from the run's own artifacts.
"""
from __future__ import annotations

import json
import os
from typing import Any, Dict, Optional, Sequence

import tensorflow as tf

from lensflow.pipeline.registry import family_of

MODEL_CHOICE_FILE = "model_choice.json"
CUSTOM_CONFIG_KEY = "model_choice"


def record_for_training(custom_config: Optional[Dict[str, Any]], cfg,
                        image_shape: Optional[Sequence[int]] = None) -> Dict[str, Any]:
    """The record handed over in ``custom_config``, made true to the config the Trainer trains
    (a Tuner's best hyperparameters may have changed the family) and to the images it trains on
    (``image_shape``, height-width-channels of Transform's output; the Trainer is not given the
    ``image`` section, so without it the record reads the whole config's); a configured record
    when none was handed over (a Trainer run outside ``create_pipeline``)."""
    family = family_of(cfg.model.family).name  # auto never resolved: the fallback it trains
    raw = (custom_config or {}).get(CUSTOM_CONFIG_KEY)
    record = json.loads(raw) if isinstance(raw, str) else dict(raw or {})
    if not record:
        record = {"source": "config", "reason": "model.family as configured"}
    if record.get("family") not in (None, family):
        record["reason"] = (f"the Tuner chose {family} (was {record['family']}: "
                            f"{record.get('reason', '')})")
        record["source"] = "tuner"
    if image_shape is not None:
        size, color_mode = int(image_shape[0]), "rgb" if image_shape[-1] == 3 else "grayscale"
    else:
        size, color_mode = cfg.image.size, cfg.image.color_mode
    record.update(family=family, image_size=size, color_mode=color_mode,
                  backbone=cfg.model.backbone if family == "transfer" else None)
    return record


def write(model_run_dir: str, record: Dict[str, Any]) -> None:
    with tf.io.gfile.GFile(os.path.join(model_run_dir, MODEL_CHOICE_FILE), "w") as fh:
        fh.write(json.dumps(record, sort_keys=True))


def read(model_run_uri: str) -> Optional[Dict[str, Any]]:
    """The record of a Trainer's model run, or None (runs before it was written have none)."""
    path = os.path.join(model_run_uri, MODEL_CHOICE_FILE)
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path) as fh:
        return json.loads(fh.read())


def describe(record: Dict[str, Any]) -> str:
    """One line: what was trained and why."""
    what = record["family"] + (f" ({record['backbone']})" if record.get("backbone") else "")
    size = f"{record['image_size']} px {record['color_mode']}"
    how = {"auto": "chosen from the data", "tuner": "chosen by the Tuner"}.get(
        record.get("source"), "as configured")
    return f"{what}, {size}; {how}: {record.get('reason', '')}".rstrip(": ")
