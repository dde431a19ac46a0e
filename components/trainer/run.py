"""Trainer's module: ``run_fn`` trains the configured family and exports the serving model."""
from __future__ import annotations

import json
import os
from typing import Optional

import tensorflow as tf
import tensorflow_transform as tft

from lensflow.components.trainer import (choice, data, distribution, optim, resume, scaling,
                                        signatures)
from lensflow.components.trainer.models import build_model
from lensflow.components.transform import augment, features
from lensflow.pipeline.config import LensflowConfig, from_custom_config
from lensflow.pipeline.registry import family_of

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


def train(model, cfg: LensflowConfig, train_data, eval_ds, log_dir: str,
          steps_per_epoch: Optional[int] = None,
          progress: Optional[resume.Progress] = None) -> dict:
    """Fit in one phase, or two for a family with an unfreeze step (``transfer``) when
    ``train.fine_tune_epochs`` > 0; return the merged history (restored epochs included).

    ``train_data`` is a dataset, or ``first_epoch -> dataset`` (``data.epoch_stream``) so a
    resumed phase reads the batches of the epoch it resumes at. ``steps_per_epoch`` (batches in
    one pass over the training data) sizes the warm-up and cosine schedules when
    ``train.steps_per_epoch`` is not set. With a ``progress`` that has a backup folder, each
    phase backs up every epoch there (``BackupAndRestore``) and resumes from it; a phase that
    finished in an earlier attempt is not run again, its last weights are loaded (into the
    compiled model, so the backup's optimizer state lands in that phase's optimizer rather than
    in the next phase's fresh one)."""
    unfreeze = family_of(cfg.model.family).load_unfreeze()
    total = resume.total_epochs(cfg)
    progress = progress or resume.Progress(None, total)
    top_k = min(cfg.evaluation.top_k, model.output_shape[-1])
    steps = cfg.train.steps_per_epoch
    lr = optim.learning_rate(cfg.train, cfg.train.learning_rate, steps or steps_per_epoch or 1,
                             cfg.train.epochs)
    phases = [(1, 0, cfg.train.epochs, lr)]
    if total > cfg.train.epochs:
        phases.append((2, cfg.train.epochs, total, cfg.train.fine_tune_learning_rate))
    for phase, start, end, rate in phases:
        if phase == 2:
            unfreeze(model, cfg.model.fine_tune_layers, cfg.model.fine_tune_fraction)
        backup = resume.phase_dir(progress.root, phase) if progress.root else None
        first = (resume.next_epoch(backup) if backup else None) or start
        compile_model(model, rate, top_k, cfg.train)
        if first >= end:
            resume.restore_weights(model, backup)
            continue
        progress.begin(phase, first)
        callbacks = [tf.keras.callbacks.TensorBoard(log_dir=log_dir, update_freq="epoch"),
                     progress]
        if backup:
            callbacks.append(tf.keras.callbacks.BackupAndRestore(backup, delete_checkpoint=False))
        streamed = callable(train_data)
        model.fit(train_data(first) if streamed else train_data, validation_data=eval_ds,
                  initial_epoch=start, epochs=end,
                  steps_per_epoch=(steps or steps_per_epoch) if streamed else steps,
                  callbacks=callbacks, verbose=2)
    return progress.history()


def export(model, tf_transform_output, names, serving_model_dir: str,
           max_file_bytes: int, pixel_scaling: scaling.PixelScaling) -> None:
    """SavedModel of the trained network itself with the three signatures (Keras-loadable
    too), without the optimizer's state (serving never needs it; Adam's slots tripled the
    variables); the signatures apply ``pixel_scaling`` before the network, and it is written
    beside the class names for callers of the Keras model."""
    sigs = signatures.make_signatures(model, tf_transform_output, names, max_file_bytes,
                                      pixel_scaling)
    model.save(serving_model_dir, save_format="tf", signatures=sigs, include_optimizer=False)
    path = os.path.join(serving_model_dir, features.CLASS_NAMES_FILE)
    tf.io.gfile.makedirs(os.path.dirname(path))
    with tf.io.gfile.GFile(path, "w") as fh:
        fh.write(json.dumps(list(names)))
    pixel_scaling.write(serving_model_dir)


def run_fn(fn_args) -> None:
    """TFX Trainer entry point. Resumes from the backups of an earlier, killed execution on the
    same inputs (``train.resume``) and deletes them once the model is exported.

    Trains under ``train.distribution``'s strategy (``distribution``), created first because a
    multi-worker strategy must exist before TensorFlow runs anything; the model, its optimiser
    and callbacks are made in its scope. Every replica runs this function; only the chief writes
    the model and the run's files, the others export to a temporary folder."""
    cfg = from_custom_config(fn_args.custom_config, "Trainer")
    strategy = distribution.strategy_for(cfg.train.distribution)
    chief = distribution.is_chief(strategy)
    print(distribution.describe(strategy, chief), flush=True)
    hyperparameters = getattr(fn_args, "hyperparameters", None)
    if hyperparameters:
        cfg = apply_hyperparameters(cfg, hyperparameters)
    tf.keras.utils.set_random_seed(cfg.train.seed)
    tf_transform_output = tft.TFTransformOutput(fn_args.transform_output)
    names = class_names(tf_transform_output)
    stats = data.split_statistics(fn_args.train_files, fn_args.data_accessor,
                                  tf_transform_output, cfg)
    eval_examples = data.count_examples(fn_args.eval_files, fn_args.data_accessor,
                                        tf_transform_output)
    batches_per_pass = -(-stats.count // cfg.train.batch_size)
    steps = cfg.train.steps_per_epoch or batches_per_pass

    def train_data(first_epoch: int):
        dataset = data.epoch_stream(fn_args.train_files, fn_args.data_accessor,
                                    tf_transform_output, cfg, steps, batches_per_pass, stats,
                                    first_epoch)
        return optim.one_hot_labels(dataset, len(names)) if cfg.train.label_smoothing else dataset

    eval_ds = data.eval_dataset(fn_args.eval_files, fn_args.data_accessor,
                                tf_transform_output, cfg, stats, eval_examples)
    if cfg.train.label_smoothing:
        eval_ds = optim.one_hot_labels(eval_ds, len(names))
    root = resume.backup_dir(fn_args, cfg) if cfg.train.resume else None
    with strategy.scope():
        model = build_model(cfg, stats.shape, len(names))
        progress = resume.Progress(root, resume.total_epochs(cfg), writer=chief)
        history = train(model, cfg, train_data, eval_ds, fn_args.model_run_dir,
                        batches_per_pass, progress)
    with distribution.write_dir(fn_args.serving_model_dir, chief) as serving_model_dir:
        export(model, tf_transform_output, names, serving_model_dir, cfg.data.max_file_bytes,
               scaling.PixelScaling.of(stats, cfg.effective_normalize))
    if chief:
        write_run_files(fn_args.model_run_dir, history, cfg, progress)
        choice.write(fn_args.model_run_dir,
                     choice.record_for_training(fn_args.custom_config, cfg,
                                                stats.shape))
    distribution.barrier(strategy)
    if chief:
        resume.discard(root)


def write_run_files(model_run_dir: str, history: dict, cfg: LensflowConfig,
                    progress: resume.Progress) -> None:
    """The training history, the augmentation policy and ``resume.json`` beside the logs."""
    tf.io.gfile.makedirs(model_run_dir)
    with tf.io.gfile.GFile(os.path.join(model_run_dir, HISTORY_FILE), "w") as fh:
        fh.write(json.dumps(history))
    with tf.io.gfile.GFile(os.path.join(model_run_dir, AUGMENTATION_FILE), "w") as fh:
        fh.write(json.dumps(augment.describe(cfg.augment)))
    resume.write_record(model_run_dir, progress.record())


def apply_hyperparameters(cfg: LensflowConfig, hyperparameters) -> LensflowConfig:
    """Apply a Tuner's best hyperparameters (dotted config keys) to the config."""
    values = hyperparameters.get("values", hyperparameters) if isinstance(hyperparameters, dict) \
        else hyperparameters.values
    known = {k: v for k, v in values.items() if "." in k}
    return cfg.replace(**known) if known else cfg
