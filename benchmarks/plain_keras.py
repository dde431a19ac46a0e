"""The comparison point: a plain Keras script training the same model on the same image files.

No TFX, no Beam, no metadata: ``image_dataset_from_directory`` + the same model builder,
epochs and batch size as a lensflow run. Prints a JSON line with accuracy and wall time.
"""
import argparse
import json
import os
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import tensorflow as tf  # noqa: E402

from lensflow.components.trainer.models import build_model  # noqa: E402
from lensflow.components.trainer import optim  # noqa: E402
from lensflow.components.trainer.run import compile_model  # noqa: E402
from lensflow.components.transform import augment  # noqa: E402
from lensflow.pipeline.config import load_config  # noqa: E402


def datasets(root: str, size: int, batch: int, seed: int, policy=None):
    """Train / test datasets from a pre-split tree, normalised with train statistics; the
    training batches get the same training-only augmentation policy as lensflow's Trainer."""
    def load(split, shuffle):
        return tf.keras.utils.image_dataset_from_directory(
            os.path.join(root, split), color_mode="grayscale", image_size=(size, size),
            batch_size=batch, shuffle=shuffle, seed=seed, label_mode="int")

    train, test = load("train", True), load("test", False)
    norm = tf.keras.layers.Normalization(axis=-1)
    norm.adapt(train.map(lambda x, _: x / 255.0))
    prep = lambda x, y: (norm(x / 255.0), y)  # noqa: E731
    classes = len(train.class_names)
    train = train.map(prep).cache()
    if policy is not None:
        train = augment.augment_dataset(train, policy, (size, size, 1))
    return (train.prefetch(tf.data.AUTOTUNE),
            test.map(prep).cache().prefetch(tf.data.AUTOTUNE), classes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", required=True, help="pre-split tree: DATA/{train,test}/<class>/")
    parser.add_argument("--config", help="the lensflow YAML config to mirror (model, epochs, batch...)")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--batch-size", type=int)
    args = parser.parse_args()
    cfg = load_config(args.config, {"train.epochs": args.epochs,
                                    "train.batch_size": args.batch_size})
    tf.keras.utils.set_random_seed(cfg.train.seed)
    start = time.time()
    train, test, classes = datasets(args.data, cfg.image.size, cfg.train.batch_size, cfg.train.seed,
                                    cfg.augment)
    model = build_model(cfg, (cfg.image.size, cfg.image.size, 1), classes)
    steps = int(train.cardinality())
    compile_model(model, optim.learning_rate(cfg.train, cfg.train.learning_rate, steps,
                                             cfg.train.epochs),
                  cfg.evaluation.top_k, cfg.train)
    if cfg.train.label_smoothing:
        train, test = optim.one_hot_labels(train, classes), optim.one_hot_labels(test, classes)
    model.fit(train, epochs=cfg.train.epochs, verbose=2)
    _, accuracy, _ = model.evaluate(test, verbose=0)
    print(json.dumps({"accuracy": accuracy, "wall_seconds": time.time() - start}))


if __name__ == "__main__":
    main()
