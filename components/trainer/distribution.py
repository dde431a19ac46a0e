"""``train.distribution``: the ``tf.distribute`` strategy the Trainer builds, trains and exports under.

``none`` trains in one replica; ``mirrored`` replicates over this machine's GPUs
(``MirroredStrategy``); ``multi_worker`` trains in every process that ``TF_CONFIG`` names
(``MultiWorkerMirroredStrategy``: what Kubeflow's Training Operator sets for each replica of a
TFJob); ``auto`` picks multi_worker when TF_CONFIG names more than one worker, mirrored with more
than one GPU, and none otherwise. ``train.batch_size`` is the global batch: each of the N replicas
gets 1/N of it, so the optimisation (and the learning-rate schedule) is the one of a single process.

Every replica runs the whole ``run_fn``; only the chief (the ``chief`` task, or worker 0 when there
is none) writes the exported model and the run's files. The others write their export to a local
temporary folder they delete (all replicas must save: reading distributed variables may need a
collective), then wait at a barrier until the chief has finished, so TFX's check that the model
folder exists holds on a shared store (the pipeline root is one on Kubeflow).
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from typing import Iterator, Mapping, Optional

import tensorflow as tf

NONE, MIRRORED, MULTI_WORKER = "none", "mirrored", "multi_worker"
TF_CONFIG = "TF_CONFIG"
STRATEGY_LINE = "lensflow: training with"
_TRAINING_TASKS = ("chief", "master", "worker")


class DistributionError(RuntimeError):
    """The distribution setting and this process's cluster do not fit; the message says why."""


@dataclass(frozen=True)
class Cluster:
    """The training cluster ``TF_CONFIG`` describes: how many processes train, and this one."""

    workers: int
    task_type: str
    task_index: int


def cluster_from_env(environ: Mapping[str, str] = os.environ) -> Optional[Cluster]:
    """The cluster of ``TF_CONFIG``, or None when it is unset or names no cluster."""
    text = environ.get(TF_CONFIG, "").strip()
    if not text:
        return None
    try:
        spec = json.loads(text)
    except ValueError as err:
        raise DistributionError(f"{TF_CONFIG} is not JSON ({err}): {text[:200]!r}") from None
    cluster = spec.get("cluster") if isinstance(spec, dict) else None
    if not cluster:
        return None
    if not isinstance(cluster, dict) or not all(isinstance(v, list) for v in cluster.values()):
        raise DistributionError(f"{TF_CONFIG}.cluster={cluster!r}; expected task type -> list of "
                                "host:port")
    others = sorted(set(cluster) - set(_TRAINING_TASKS))
    if others:
        raise DistributionError(
            f"{TF_CONFIG} names {', '.join(others)} tasks; lensflow trains with "
            "MultiWorkerMirroredStrategy, which takes Chief and Worker replicas only")
    task = spec.get("task") or {}
    task_type, task_index = task.get("type"), task.get("index", 0)
    if task_type not in cluster or not isinstance(task_index, int) or \
            not 0 <= task_index < len(cluster[task_type]):
        raise DistributionError(f"{TF_CONFIG}.task={task!r} is not a task of its cluster "
                                f"({', '.join(f'{k}: {len(v)}' for k, v in cluster.items())})")
    return Cluster(sum(len(cluster[k]) for k in cluster), task_type, task_index)


def gpu_count() -> int:
    """The GPUs TensorFlow sees (does not start TensorFlow's runtime)."""
    return len(tf.config.list_physical_devices("GPU"))


def resolve(choice: str, cluster: Optional[Cluster], gpus: int) -> str:
    """The strategy kind for a ``train.distribution`` value, this process's cluster and GPUs."""
    if choice == "auto":
        if cluster is not None and cluster.workers > 1:
            return MULTI_WORKER
        return MIRRORED if gpus > 1 else NONE
    if choice == MULTI_WORKER and cluster is None:
        raise DistributionError(
            f"train.distribution=multi_worker needs {TF_CONFIG} naming the cluster and this "
            "task (the Training Operator sets it for every TFJob replica); it is not set")
    if choice in (NONE, MIRRORED) and cluster is not None and cluster.workers > 1:
        raise DistributionError(
            f"train.distribution={choice} but {TF_CONFIG} names {cluster.workers} workers: each "
            "would train alone and overwrite the others' model; use multi_worker or auto")
    return choice


def strategy_for(choice: str, environ: Mapping[str, str] = os.environ) -> tf.distribute.Strategy:
    """The strategy ``train.distribution`` asks for here. Call it before TensorFlow runs any op
    in this process: MultiWorkerMirroredStrategy configures collective ops at start-up."""
    kind = resolve(choice, cluster_from_env(environ), gpu_count())
    if kind == MULTI_WORKER:
        try:
            return tf.distribute.MultiWorkerMirroredStrategy()
        except RuntimeError as err:
            raise DistributionError(
                f"train.distribution: MultiWorkerMirroredStrategy could not start ({err}); it "
                "must be created before TensorFlow runs anything in the process, so run the "
                "Trainer in a process of its own (a TFJob replica, a Kubeflow task)") from err
    if kind == MIRRORED:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def tuner_strategy(choice: str, gpus: Optional[int] = None) -> Optional[tf.distribute.Strategy]:
    """The strategy of the Tuner's trials, which run in one process (the Tuner is no TFJob):
    MirroredStrategy over this machine's GPUs unless the choice is ``none`` or there is at most
    one GPU; None (KerasTuner's default) otherwise."""
    gpus = gpu_count() if gpus is None else gpus
    if choice == NONE or (choice != MIRRORED and gpus < 2):
        return None
    return tf.distribute.MirroredStrategy()


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes the model: always outside a multi-worker cluster; there, the
    ``chief`` task, or worker 0 when the cluster has no chief."""
    resolver = getattr(strategy, "cluster_resolver", None)
    task_type = getattr(resolver, "task_type", None)
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) or task_type is None:
        return True
    if task_type in ("chief", "master"):
        return True
    has_chief = bool({"chief", "master"} & set(resolver.cluster_spec().as_dict()))
    return task_type == "worker" and resolver.task_id == 0 and not has_chief


@contextlib.contextmanager
def write_dir(path: str, chief: bool, name: str = "export") -> Iterator[str]:
    """``path`` for the chief; for another worker a local temporary folder, deleted after."""
    if chief:
        yield path
        return
    temporary = tempfile.mkdtemp(prefix=f"lensflow-worker-{name}-")
    try:
        yield os.path.join(temporary, os.path.basename(path.rstrip("/")) or name)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)


def describe(strategy: tf.distribute.Strategy, chief: bool) -> str:
    """One line for the Trainer's log: the strategy, its replicas and this process's part."""
    multi_worker = isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
    name = "MultiWorkerMirroredStrategy" if multi_worker else \
        "MirroredStrategy" if isinstance(strategy, tf.distribute.MirroredStrategy) else \
        "the default strategy"
    line = f"{STRATEGY_LINE} {name}, {strategy.num_replicas_in_sync} replica(s) in sync"
    resolver = getattr(strategy, "cluster_resolver", None)
    if multi_worker and resolver is not None:
        role = "chief: writes the model" if chief else "exports to a temporary folder"
        line += f"; task {resolver.task_type} {resolver.task_id} ({role})"
    return line


def barrier(strategy: tf.distribute.Strategy) -> None:
    """Wait until every worker of a multi-worker cluster gets here (an all-reduce); no-op
    elsewhere."""
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return

    @tf.function
    def all_reduce():
        return strategy.reduce(tf.distribute.ReduceOp.SUM,
                               strategy.run(lambda: tf.constant(1.0)), axis=None)

    total = float(all_reduce())
    if total != strategy.num_replicas_in_sync:
        raise DistributionError(f"barrier counted {total:g} of "
                                f"{strategy.num_replicas_in_sync} replicas")
