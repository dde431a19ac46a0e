"""Server-side request batching for ``lensflow serve`` (the TF Serving stand-in), configured by
TF Serving's batching parameters file (``--batching-parameters-file``).

What it honours: requests for the same version and signature (without ``output_filter``) that
arrive within ``batch_timeout_micros`` of the first waiting one are concatenated along the batch
dimension, up to ``max_batch_size`` images, run as one call, and the outputs split back;
``num_batch_threads`` batches run at once; once ``max_enqueued_batches`` × ``max_batch_size``
images wait, new requests are refused with UNAVAILABLE (HTTP 503), as TF Serving refuses a full
queue. A request larger than ``max_batch_size`` runs alone (TF Serving would split it), and when a
batch fails each of its requests is re-run alone, so one bad image fails only its own request.
``allowed_batch_sizes`` and ``pad_variable_length_inputs`` are not used (the inputs are
variable-length strings; no padding applies).
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

import grpc
import numpy as np

from lensflow.serving.errors import ServingError
from lensflow.serving.tf_serving_config import BatchingParameters, parse


class Unavailable(ServingError):
    """The batch queue is full (HTTP 503, UNAVAILABLE)."""

    http_status = 503
    grpc_code = grpc.StatusCode.UNAVAILABLE


@dataclass(frozen=True)
class BatchingConfig:
    max_batch_size: int = 32
    batch_timeout_micros: int = 2000
    max_enqueued_batches: int = 64
    num_batch_threads: int = 2

    @classmethod
    def from_file(cls, path: str) -> "BatchingConfig":
        """Read TF Serving's text proto; ValueError names a missing or non-positive field."""
        params = parse(path, BatchingParameters)
        values = {}
        for name in ("max_batch_size", "batch_timeout_micros", "max_enqueued_batches",
                     "num_batch_threads"):
            if params.HasField(name):
                values[name] = int(getattr(params, name).value)
                if values[name] < (0 if name == "batch_timeout_micros" else 1):
                    raise ValueError(f"{path}: {name} must be positive, got {values[name]}")
        return cls(**values)


def _array(value) -> np.ndarray:
    """``value`` as an array; bytes stay Python objects (fixed-width ``S`` arrays would drop
    trailing NUL bytes of an image)."""
    array = np.asarray(value)
    return np.array(value, dtype=object) if array.dtype.kind in "SU" else array


@dataclass
class _Task:
    model: Any
    signature: Optional[str]
    inputs: Dict[str, np.ndarray]
    size: int
    arrived: float = field(default_factory=time.monotonic)
    done: threading.Event = field(default_factory=threading.Event)
    outputs: Optional[Dict[str, np.ndarray]] = None
    error: Optional[BaseException] = None

    @property
    def key(self):
        return id(self.model), self.signature


class Batcher:
    """Queues predict calls and runs them in batches on ``num_batch_threads`` threads."""

    def __init__(self, config: BatchingConfig):
        self.config = config
        self.batches_run = 0
        self.largest_batch = 0
        self._queue: List[_Task] = []
        self._cond = threading.Condition()
        self._stopped = False
        self._threads = [threading.Thread(target=self._loop, name=f"lensflow-batch-{i}",
                                          daemon=True) for i in range(config.num_batch_threads)]
        for thread in self._threads:
            thread.start()

    def predict(self, model, inputs: Dict[str, Any], signature: Optional[str] = None,
                output_filter: Optional[List[str]] = None) -> Dict[str, np.ndarray]:
        """``model.predict`` through the queue (directly when it cannot be batched)."""
        arrays = {name: _array(value) for name, value in inputs.items()}
        sizes = {a.shape[0] if a.ndim else -1 for a in arrays.values()}
        if output_filter or len(sizes) != 1 or min(sizes) < 1 or \
                min(sizes) > self.config.max_batch_size:
            return model.predict(inputs, signature, output_filter)
        task = _Task(model, signature, arrays, sizes.pop())
        with self._cond:
            waiting = sum(t.size for t in self._queue)
            if waiting + task.size > self.config.max_enqueued_batches * self.config.max_batch_size:
                raise Unavailable(f"the batch queue is full ({waiting} images waiting); retry")
            self._queue.append(task)
            self._cond.notify_all()
        task.done.wait()
        if task.error is not None:
            raise task.error
        return task.outputs

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(timeout=10)

    def _take(self) -> Optional[List[_Task]]:
        """The next batch: the oldest task and same-key tasks behind it, once the batch is full
        or the oldest has waited ``batch_timeout_micros``."""
        timeout = self.config.batch_timeout_micros / 1e6
        with self._cond:
            while True:
                if self._stopped:
                    return None
                if not self._queue:
                    self._cond.wait()
                    continue
                first = self._queue[0]
                batch, total = [], 0
                for task in self._queue:
                    if task.key == first.key and total + task.size <= self.config.max_batch_size:
                        batch.append(task)
                        total += task.size
                remaining = first.arrived + timeout - time.monotonic()
                if total >= self.config.max_batch_size or remaining <= 0:
                    for task in batch:
                        self._queue.remove(task)
                    return batch
                self._cond.wait(remaining)

    def _loop(self) -> None:
        while True:
            batch = self._take()
            if batch is None:
                return
            self._run(batch)

    def _run(self, batch: List[_Task]) -> None:
        first = batch[0]
        try:
            joined = {name: np.concatenate([t.inputs[name] for t in batch])
                      for name in first.inputs} if len(batch) > 1 else first.inputs
            outputs = first.model.predict(joined, first.signature)
            total = sum(task.size for task in batch)
            if any(np.shape(value)[:1] != (total,) for value in outputs.values()):
                raise ValueError("an output has no batch dimension; cannot split it")
            start = 0
            for task in batch:
                task.outputs = {name: value[start:start + task.size]
                                for name, value in outputs.items()}
                start += task.size
            with self._cond:
                self.batches_run += 1
                self.largest_batch = max(self.largest_batch, start)
        except Exception:  # noqa: BLE001 - re-run each request alone: only the bad one fails
            if len(batch) == 1:
                self._alone(first)
            else:
                for task in batch:
                    self._alone(task)
        finally:
            for task in batch:
                task.done.set()

    @staticmethod
    def _alone(task: _Task) -> None:
        try:
            task.outputs = task.model.predict(task.inputs, task.signature)
        except Exception as err:  # noqa: BLE001 - delivered to the waiting request
            task.error = err
