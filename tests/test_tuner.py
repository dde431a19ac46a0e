"""The KerasTuner stage: two trials over the real transformed examples; best values reach the config."""
import glob
import os

from tfx.components.trainer.fn_args_utils import DataAccessor, FnArgs
from tfx.components.util import tfxio_utils
from tfx_bsl.tfxio import dataset_options  # noqa: F401

from lensflow.components.trainer import tuning
from lensflow.components.trainer.run import apply_hyperparameters
from lensflow.pipeline.config import CUSTOM_CONFIG_KEY


def fn_args_from(e2e, tmp_path, cfg):
    root = e2e.config.pipeline_root
    transform = glob.glob(os.path.join(root, "Transform", "transform_graph", "*"))[0]
    examples = glob.glob(os.path.join(root, "Transform", "transformed_examples", "*"))[0]
    accessor = DataAccessor(
        tf_dataset_factory=tfxio_utils.get_tf_dataset_factory_from_artifact(
            [__import__("tfx").types.standard_artifacts.Examples()], []),
        record_batch_factory=None, data_view_decode_fn=None)
    return FnArgs(
        train_files=[os.path.join(examples, "Split-train", "*")],
        eval_files=[os.path.join(examples, "Split-eval", "*")],
        transform_graph_path=transform, working_dir=str(tmp_path),
        data_accessor=accessor, custom_config={CUSTOM_CONFIG_KEY: cfg.to_json()})


def test_two_trials_run_and_the_best_values_apply_to_the_config(e2e, tmp_path):
    cfg = e2e.config.replace(**{"tuner.max_trials": 2, "tuner.epochs": 1,
                                "train.steps_per_epoch": 3})
    result = tuning.tuner_fn(fn_args_from(e2e, tmp_path, cfg))
    result.tuner.search(**result.fit_kwargs)
    trials = result.tuner.oracle.get_best_trials(num_trials=5)
    assert len(trials) == 2
    assert all(t.score is not None for t in trials)
    best = result.tuner.get_best_hyperparameters(1)[0]
    tuned = apply_hyperparameters(cfg, best.get_config())
    assert tuned.model.family == best.get("model.family")
    assert tuned.augment.preset == best.get("augment.preset")
    assert abs(tuned.train.learning_rate - best.get("train.learning_rate")) < 1e-12
