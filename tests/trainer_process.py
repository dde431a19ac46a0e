"""One TFX Trainer execution in its own process, as the local runner would launch it: TFX's
``GenericExecutor`` with lensflow's ``run_fn`` on a finished run's Transform outputs, writing to
fresh output folders (``lensflow.components.trainer.job``, what a TFJob replica runs).
``tests/test_resume.py`` kills it with a signal and starts it again;
``tests/test_distributed_training.py`` starts two with a ``TF_CONFIG`` each.

Usage: ``python tests/trainer_process.py SPEC.json`` where the spec holds the input URIs
(``examples``, ``transform_graph``, ``schema``), the output folder ``out`` and ``config`` (the
Trainer's ``custom_config`` JSON). Op determinism is switched on so two executions on the same
batches give the same numbers.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import tensorflow as tf  # noqa: E402

from lensflow.components.trainer import job  # noqa: E402


def main(spec_path: str) -> None:
    with open(spec_path, encoding="utf-8") as fh:
        spec = json.load(fh)
    tf.config.experimental.enable_op_determinism()
    job.execute({**spec, "model": os.path.join(spec["out"], "model"),
                 "model_run": os.path.join(spec["out"], "model_run")})


if __name__ == "__main__":
    main(sys.argv[1])
