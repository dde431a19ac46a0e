"""Tuner's module: KerasTuner over family, learning rate, augmentation preset and dropout.

Hyperparameter names are dotted config keys, so the best values apply to the config the
Trainer builds from (``run.apply_hyperparameters``). Augmentation changes the input pipeline,
not the model, so the HyperModel builds each trial's training data in ``fit``. Trials train over
the local GPUs when ``train.distribution`` mirrors (``distribution.tuner_strategy``): KerasTuner
builds and compiles each trial's model in that strategy's scope.
"""

import keras_tuner as kt
import tensorflow as tf
import tensorflow_transform as tft
from tfx.components.trainer.fn_args_utils import FnArgs
from tfx.components.tuner.component import TunerFnResult

from lensflow.components.trainer import data, distribution
from lensflow.components.trainer.models import build_model
from lensflow.components.trainer.run import class_names, compile_model
from lensflow.pipeline.config import LensflowConfig, from_custom_config

SPACE = {
    "model.family": ["baseline_cnn", "filter_bank"],
    "augment.preset": ["none", "light", "standard"],
}


def trial_config(cfg: LensflowConfig, hp: kt.HyperParameters) -> LensflowConfig:
    """The config a trial trains with."""
    values = {key: hp.Choice(key, choices) for key, choices in SPACE.items()}
    values["train.learning_rate"] = hp.Float("train.learning_rate", 1e-4, 3e-3, sampling="log")
    values["model.dropout"] = hp.Float("model.dropout", 0.0, 0.5, step=0.25)
    return cfg.replace(**values)


class LensflowHyperModel(kt.HyperModel):
    """Builds the trial's model and its (augmented) training data."""

    def __init__(self, cfg: LensflowConfig, fn_args: FnArgs, transform_output):
        super().__init__(name="lensflow")
        self.cfg = cfg
        self.fn_args = fn_args
        self.transform_output = transform_output
        self.num_classes = len(class_names(transform_output))
        self.stats = data.split_statistics(fn_args.train_files, fn_args.data_accessor,
                                           transform_output, cfg)
        self.eval_examples = data.count_examples(fn_args.eval_files, fn_args.data_accessor,
                                                 transform_output)

    def build(self, hp):
        cfg = trial_config(self.cfg, hp)
        model = build_model(cfg, self.stats.shape, self.num_classes)
        compile_model(model, cfg.train.learning_rate, min(cfg.evaluation.top_k, self.num_classes))
        return model

    def fit(self, hp, model, *args, **kwargs):
        cfg = trial_config(self.cfg, hp)
        train = data.train_dataset(self.fn_args.train_files, self.fn_args.data_accessor,
                                   self.transform_output, cfg, self.stats)
        evaluation = data.eval_dataset(self.fn_args.eval_files, self.fn_args.data_accessor,
                                       self.transform_output, cfg, self.stats, self.eval_examples)
        kwargs.pop("x", None)
        kwargs.pop("validation_data", None)
        return model.fit(train, validation_data=evaluation, epochs=cfg.tuner.epochs,
                         steps_per_epoch=cfg.train.steps_per_epoch, verbose=2, **kwargs)


def tuner_fn(fn_args: FnArgs) -> TunerFnResult:
    """TFX Tuner entry point: a seeded random search of ``config.tuner.max_trials`` trials."""
    cfg = from_custom_config(fn_args.custom_config, "Trainer")
    transform_output = tft.TFTransformOutput(fn_args.transform_graph_path)
    tuner = kt.RandomSearch(
        LensflowHyperModel(cfg, fn_args, transform_output),
        objective=kt.Objective("val_accuracy", direction="max"),
        max_trials=cfg.tuner.max_trials, seed=cfg.train.seed,
        distribution_strategy=distribution.tuner_strategy(cfg.train.distribution),
        directory=fn_args.working_dir, project_name="lensflow", overwrite=True)
    tf.keras.utils.set_random_seed(cfg.train.seed)
    return TunerFnResult(tuner=tuner, fit_kwargs={})
