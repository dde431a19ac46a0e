"""Trainer's module: ``run_fn`` trains the configured family and exports the serving model."""
from __future__ import annotations

import json
import os
from typing import Optional

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import tensorflow as tf  # noqa: E402
import tensorflow_transform as tft  # noqa: E402

from components.trainer import data, optim, signatures  # noqa: E402
from components.trainer.models import FAMILIES, build_model  # noqa: E402
from components.transform import augment, features  # noqa: E402
from pipeline.config import LensflowConfig, from_custom_config  # noqa: E402

HISTORY_FILE = "history.json"
AUGMENTATION_FILE = "augmentation.json"


def class_names(tf_transform_output) -> list:
    """Class names in label-id order, from Transform's vocabulary."""
    return [v.decode() if isinstance(v, bytes) else v
            for v in tf_transform_output.vocabulary_by_name(features.LABEL_VOCAB_NAME)]


def compile_model(model, learning_rate, top_k: int = 3, train_cfg=None) -> None:
    """Cross-entropy on probabilities, accuracy and top-k accuracy. Without ``train_cfg``: Adam
    and sparse labels; with it: its optimiser and label smoothing (one-hot labels, see
    ``optim``). ``learning_rate`` is a float or a schedule."""
    if train_cfg is None:
        optimizer = tf.keras.optimizers.Adam(learning_rate)
        loss, metrics = optim.loss_and_metrics(0.0, top_k)
    else:
        optimizer = optim.optimizer(train_cfg, learning_rate)
        loss, metrics = optim.loss_and_metrics(train_cfg.label_smoothing, top_k)
    model.compile(optimizer=optimizer, loss=loss, metrics=metrics)


def train(model, cfg: LensflowConfig, train_ds, eval_ds, log_dir: str,
          steps_per_epoch: Optional[int] = None) -> dict:
    """Fit in one phase, or two for a family with an unfreeze step (``transfer``) when
    ``train.fine_tune_epochs`` > 0; return the merged history.

    ``steps_per_epoch`` (batches in one pass over the training data) sizes the warm-up and
    cosine schedules when ``train.steps_per_epoch`` is not set."""
    callbacks = [tf.keras.callbacks.TensorBoard(log_dir=log_dir, update_freq="epoch")]
    top_k = min(cfg.evaluation.top_k, model.output_shape[-1])
    steps = cfg.train.steps_per_epoch
    lr = optim.learning_rate(cfg.train, cfg.train.learning_rate, steps or steps_per_epoch or 1,
                             cfg.train.epochs)
    compile_model(model, lr, top_k, cfg.train)
    history = model.fit(train_ds, validation_data=eval_ds, epochs=cfg.train.epochs,
                        steps_per_epoch=steps, callbacks=callbacks, verbose=2).history
    history = {k: list(map(float, v)) for k, v in history.items()}
    history["phase"] = [1] * cfg.train.epochs
    unfreeze = FAMILIES[cfg.model.family].load_unfreeze()
    if unfreeze and cfg.train.fine_tune_epochs > 0:
        unfreeze(model, cfg.model.fine_tune_layers, cfg.model.fine_tune_fraction)
        compile_model(model, cfg.train.fine_tune_learning_rate, top_k, cfg.train)
        more = model.fit(train_ds, validation_data=eval_ds,
                         initial_epoch=cfg.train.epochs,
                         epochs=cfg.train.epochs + cfg.train.fine_tune_epochs,
                         steps_per_epoch=steps, callbacks=callbacks, verbose=2).history
        for key, values in more.items():
            history.setdefault(key, []).extend(map(float, values))
        history["phase"] += [2] * cfg.train.fine_tune_epochs
    return history


def export(model, tf_transform_output, names, serving_model_dir: str,
           max_file_bytes: int) -> None:
    """SavedModel with the three signatures (Keras-loadable too)."""
    sigs = signatures.make_signatures(model, tf_transform_output, names, max_file_bytes)
    model.save(serving_model_dir, save_format="tf", signatures=sigs)
    path = os.path.join(serving_model_dir, features.CLASS_NAMES_FILE)
    tf.io.gfile.makedirs(os.path.dirname(path))
    with tf.io.gfile.GFile(path, "w") as fh:
        fh.write(json.dumps(list(names)))


def run_fn(fn_args) -> None:
    """TFX Trainer entry point."""
    cfg = from_custom_config(fn_args.custom_config)
    hyperparameters = getattr(fn_args, "hyperparameters", None)
    if hyperparameters:
        cfg = apply_hyperparameters(cfg, hyperparameters)
    tf.keras.utils.set_random_seed(cfg.train.seed)
    tf_transform_output = tft.TFTransformOutput(fn_args.transform_output)
    names = class_names(tf_transform_output)
    train_ds = data.train_dataset(fn_args.train_files, fn_args.data_accessor,
                                  tf_transform_output, cfg)
    eval_ds = data.eval_dataset(fn_args.eval_files, fn_args.data_accessor,
                                tf_transform_output, cfg)
    if cfg.train.label_smoothing:
        train_ds = optim.one_hot_labels(train_ds, len(names))
        eval_ds = optim.one_hot_labels(eval_ds, len(names))
    steps_per_epoch = None
    if optim.needs_steps(cfg.train) and not cfg.train.steps_per_epoch:
        examples = data.count_examples(fn_args.train_files, fn_args.data_accessor,
                                       tf_transform_output)
        steps_per_epoch = -(-examples // cfg.train.batch_size)
    model = build_model(cfg, data.image_shape(tf_transform_output), len(names))
    history = train(model, cfg, train_ds, eval_ds, fn_args.model_run_dir, steps_per_epoch)
    os.makedirs(fn_args.model_run_dir, exist_ok=True)
    with tf.io.gfile.GFile(os.path.join(fn_args.model_run_dir, HISTORY_FILE), "w") as fh:
        fh.write(json.dumps(history))
    with tf.io.gfile.GFile(os.path.join(fn_args.model_run_dir, AUGMENTATION_FILE), "w") as fh:
        fh.write(json.dumps(augment.describe(cfg.augment)))
    export(model, tf_transform_output, names, fn_args.serving_model_dir, cfg.data.max_file_bytes)


def apply_hyperparameters(cfg: LensflowConfig, hyperparameters) -> LensflowConfig:
    """Apply a Tuner's best hyperparameters (dotted config keys) to the config."""
    values = hyperparameters.get("values", hyperparameters) if isinstance(hyperparameters, dict) \
        else hyperparameters.values
    known = {k: v for k, v in values.items() if "." in k}
    return cfg.replace(**known) if known else cfg
