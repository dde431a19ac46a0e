"""The one typed configuration of a lensflow run.

A ``LensflowConfig`` is loaded from YAML (optional) plus CLI overrides, flows into
``create_pipeline`` and, serialised through ``custom_config``, into the Transform and
Trainer module files. Nothing else holds knobs.

The sections are pydantic dataclasses: every value is checked against its type hint when the
config is built (``learning_rate: 1e-3`` from YAML becomes a float, ``dropout: high`` is refused),
and every error names the dotted key, the value and what is allowed.
"""
from __future__ import annotations

import dataclasses
import json
import os
import posixpath
import re
from dataclasses import field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from typing_extensions import Annotated

import yaml
from pydantic import ConfigDict, Field, ValidationError
from pydantic.dataclasses import dataclass as _pydantic_dataclass

from lensflow import ROOT
from lensflow.pipeline.registry import (AUGMENT_OPS, AUGMENT_PRESETS, AUTO, BACKBONES,
                                        DEFAULT_BACKBONE, DISTRIBUTIONS, FAMILIES, family_of)

# The repository's folders: the checkout's, or the same folders inside an installed package.
REPO_ROOT = Path(ROOT)
SAMPLE_DATA = REPO_ROOT / "data" / "sample" / "fashion_mnist"
CURATED_SCHEMA = REPO_ROOT / "schemas" / "schema.pbtxt"

CUSTOM_CONFIG_KEY = "lensflow_config"
_URI = re.compile(r"^[a-z][a-z0-9+.-]*://.")  # s3://bucket/..., gs://bucket/...


Positive = Annotated[int, Field(ge=1)]
NonNegative = Annotated[int, Field(ge=0)]
Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
Strength = Annotated[float, Field(ge=0.0)]


class ConfigError(ValueError):
    """A configuration value is invalid; the message names the field."""


def dataclass(cls):
    """A config section: a dataclass whose fields are validated against their type hints."""
    return _pydantic_dataclass(cls, config=ConfigDict(extra="forbid"))


@dataclass
class DataConfig:
    """Where the images are and how they are split.

    Copies of one image (byte-identical, or re-encoded/resized: ``near_duplicates`` by a pHash
    within ``duplicate_hash_distance`` bits whose 16x16 thumbnails correlate to at least
    ``duplicate_similarity``) form a group whose files share one split. ``label_conflicts``:
    a group under several labels drops every copy (``reject``), the minority's copies
    (``majority``; a tie drops all) or nothing (``keep``). ``presplit_duplicates``: when a
    pre-split dataset puts copies in different splits, drop the eval/test copies
    (``drop_held_out``), the train/eval ones (``drop_train``) or none (``keep``, with a warning).
    """

    path: Optional[str] = str(SAMPLE_DATA)
    manifest: Optional[str] = None
    split_buckets: Dict[str, int] = field(
        default_factory=lambda: {"train": 8, "eval": 1, "test": 1})
    max_image_pixels: Positive = 40_000_000
    max_file_bytes: Positive = 64 * 1024 * 1024
    near_duplicates: bool = True
    duplicate_hash_distance: Annotated[int, Field(ge=0, le=16)] = 8
    duplicate_similarity: Annotated[float, Field(ge=0.5, le=1.0)] = 0.993
    label_conflicts: str = "reject"
    presplit_duplicates: str = "drop_held_out"


@dataclass
class ImageConfig:
    """How Transform turns encoded bytes into model input (deterministic)."""

    size: int = 28
    color_mode: str = "grayscale"
    resize_policy: str = "stretch"
    normalize: Optional[bool] = None


@dataclass
class AugmentConfig:
    """Training-only augmentation; ``preset`` fills strengths not set explicitly. One field per op
    of ``AUGMENT_OPS`` in ``pipeline/registry.py`` (checked when this module is imported)."""

    preset: str = "none"
    allow_orientation_changes: bool = True
    horizontal_flip: Optional[bool] = None
    vertical_flip: Optional[bool] = None
    rotation: Optional[Strength] = None
    zoom: Optional[Strength] = None
    translation: Optional[Strength] = None
    contrast: Optional[Strength] = None
    brightness: Optional[Strength] = None
    crop_padding: Optional[NonNegative] = None
    erasing: Optional[Fraction] = None
    seed: int = 1234


_AUGMENT_SETTINGS = {"preset", "allow_orientation_changes", "seed"}
if set(AugmentConfig.__dataclass_fields__) - _AUGMENT_SETTINGS != set(AUGMENT_OPS):
    raise ImportError("AugmentConfig's op fields and pipeline/registry.py's AUGMENT_OPS differ")


@dataclass
class ModelConfig:
    """Which model family to build and how. ``family: auto`` chooses the family, image size
    and colour mode from the data (``pipeline/auto_model.py``; the rule is in the registry)."""

    family: str = AUTO
    backbone: str = DEFAULT_BACKBONE
    weights: Optional[str] = "imagenet"
    backbone_input_size: Annotated[int, Field(ge=32)] = 96
    fine_tune_layers: NonNegative = 0
    fine_tune_fraction: Fraction = 0.0
    filters: List[str] = field(
        default_factory=lambda: ["sobel_x", "sobel_y", "laplacian", "gabor"])
    filter_mode: str = "fixed"
    dropout: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.25
    widths: List[int] = field(default_factory=lambda: [32, 64, 128])
    depths: List[int] = field(default_factory=lambda: [0, 0, 1])
    flip_tta: bool = False


@dataclass
class TrainConfig:
    """Optimisation settings, per phase for transfer learning. ``resume``: back up every epoch
    (under ``resume_dir``, default ``<home>/resume``) so a killed Trainer resumes at its last
    finished epoch; the backups are deleted when the model is exported. ``distribution``: one
    process, local GPUs or the workers of ``TF_CONFIG`` (``DISTRIBUTIONS`` in the registry);
    ``batch_size`` is the global batch, split over the replicas. ``cache_budget_mb``: a split
    whose stored images fit is cached in RAM, a larger one is read from disk every epoch;
    ``shuffle_buffer_mb`` bounds the shuffle buffer (stored uint8 images)."""

    epochs: int = 3
    batch_size: int = 32
    learning_rate: float = 1e-3
    fine_tune_epochs: NonNegative = 0
    fine_tune_learning_rate: Annotated[float, Field(gt=0.0)] = 1e-4
    steps_per_epoch: Optional[Positive] = None
    seed: int = 42
    optimizer: str = "adam"
    weight_decay: float = 0.0
    momentum: float = 0.9
    lr_schedule: str = "constant"
    warmup_epochs: float = 0.0
    label_smoothing: float = 0.0
    shuffle_buffer_mb: int = 512
    cache_budget_mb: int = 256
    precision: str = "float32"
    resume: bool = True
    resume_dir: Optional[str] = None
    distribution: str = "auto"


@dataclass
class TunerConfig:
    """Optional KerasTuner stage; off by default."""

    enabled: bool = False
    max_trials: Positive = 4
    epochs: Positive = 2


@dataclass
class EvaluationConfig:
    """TFMA thresholds deciding whether a model is blessed."""

    min_accuracy: float = 0.5
    top_k: Positive = 3
    min_class_recall: Optional[Fraction] = None
    max_accuracy_drop: Fraction = 0.0
    calibration_bins: Annotated[int, Field(ge=2)] = 10


@dataclass
class DriftConfig:
    """Drift of this run's training data against the data the serving version was trained on
    (TFDV's drift comparators on the ``train`` statistics). Thresholds: the L-infinity distance
    of the label distribution, of the categorical image attributes (size and brightness
    buckets), and the Jensen-Shannon divergence of the numeric ones (width, height, channels).
    ``policy``: ``report-only`` records and reports the drift; ``gate`` also stops the run
    before Transform when a threshold is exceeded."""

    policy: str = "report-only"
    label_infinity_norm: Fraction = 0.1
    attribute_infinity_norm: Fraction = 0.2
    attribute_jensen_shannon: Fraction = 0.2


@dataclass
class PushConfig:
    """Where blessed models go, in TF Serving's layout."""

    serving_dir: Optional[str] = None
    model_name: str = "lensflow"
    keep_versions: int = 5


@dataclass
class ServingCheckConfig:
    """The check before push: a model server must load the candidate and answer its warmup
    and a canary request over REST and gRPC within ``timeout_seconds``. ``enabled: false``
    still writes the warmup requests but starts no server (the candidate is pushed unchecked)."""

    enabled: bool = True
    timeout_seconds: Annotated[float, Field(ge=5, le=3600)] = 180.0
    images_per_class: Annotated[int, Field(ge=1, le=20)] = 2


@dataclass
class BeamConfig:
    """Beam runner for the Beam-powered components (ImageExampleGen, StatisticsGen, Transform,
    Evaluator).

    ``environment_type`` says where a portable runner (PortableRunner, FlinkRunner, SparkRunner)
    runs lensflow's code: ``LOOPBACK`` in the launching process (PortableRunner's default here),
    ``EXTERNAL`` in a Beam worker pool at ``environment_config`` (host:port), ``DOCKER`` in the SDK
    container image ``environment_config`` (lensflow's image), ``PROCESS`` by the boot command in
    ``environment_config`` (Beam's JSON form). Unset, Flink and Spark keep Beam's own default.
    """

    runner: str = "DirectRunner"
    direct_num_workers: int = 1
    direct_running_mode: str = "in_memory"
    job_endpoint: Optional[str] = None
    environment_type: Optional[str] = None
    environment_config: Optional[str] = None
    extra_args: List[str] = field(default_factory=list)


@dataclass
class KubeflowConfig:
    """What the compiled Kubeflow pipeline runs with.

    ``serving_dir`` and ``data_path`` are paths inside the pipeline's pods (ingestion and the
    Pusher use POSIX file APIs), normally on the PersistentVolumeClaims in ``volumes``
    (``"<claim name>:<mount path>"``), mounted on the components that use them. ``workdir`` is
    where ``kubeflow/Dockerfile`` puts the repository (the curated schema is read from there).
    The ``s3_*`` keys apply to an ``s3://`` pipeline root (e.g. the MinIO of a KFP install):
    the endpoint (``host:port``), region and scheme go into every task's environment, and the
    credentials come from the Kubernetes secret ``s3_secret`` (keys ``accesskey``, ``secretkey``).
    """

    image: str = "lensflow:latest"
    pipeline_root: str = "gs://YOUR-BUCKET/lensflow"
    serving_dir: str = "/mnt/models"
    data_path: str = "/mnt/data/images"
    volumes: List[str] = field(
        default_factory=lambda: ["lensflow-models:/mnt/models", "lensflow-data:/mnt/data"])
    workdir: str = "/lensflow"
    resources: Dict[str, Dict[str, Any]] = field(default_factory=dict)
    s3_endpoint: str = "minio-service.kubeflow:9000"
    s3_secret: str = "mlpipeline-minio-artifact"
    s3_region: str = "us-east-1"
    s3_use_https: bool = False

    def resources_for(self, task: str) -> Dict[str, Any]:
        """The resources of one task: its own entry over the ``default`` entry."""
        merged = dict(self.resources.get("default") or {})
        merged.update(self.resources.get(task) or {})
        if "gpu" in merged:
            merged.setdefault("gpu_type", DEFAULT_GPU_TYPE)
        return merged


RESOURCE_KEYS = ("cpu", "memory", "cpu_request", "memory_request", "gpu", "gpu_type",
                 "node_selector")
GPU_TASKS = ("Trainer", "Tuner")
DEFAULT_GPU_TYPE = "nvidia.com/gpu"
FREE_FORM_MAPPINGS = ("split_buckets", "resources")


@dataclass
class LensflowConfig:
    """Everything a run needs."""

    pipeline_name: str = "lensflow"
    home: Optional[str] = None
    enable_cache: bool = True
    data: DataConfig = field(default_factory=DataConfig)
    image: ImageConfig = field(default_factory=ImageConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    tuner: TunerConfig = field(default_factory=TunerConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    drift: DriftConfig = field(default_factory=DriftConfig)
    push: PushConfig = field(default_factory=PushConfig)
    serving_check: ServingCheckConfig = field(default_factory=ServingCheckConfig)
    beam: BeamConfig = field(default_factory=BeamConfig)
    kubeflow: KubeflowConfig = field(default_factory=KubeflowConfig)

    @property
    def effective_normalize(self) -> bool:
        """Per-channel normalisation; off by default for ``transfer``, whose backbone
        applies the preprocessing its ImageNet weights expect to [0, 1] pixels."""
        if self.image.normalize is None:
            return family_of(self.model.family).normalize
        return bool(self.image.normalize)

    # ---- derived locations ------------------------------------------------
    @property
    def home_dir(self) -> Path:
        return Path(self.home or os.environ.get("LENSFLOW_HOME")
                    or Path.home() / ".lensflow").expanduser().resolve()

    @property
    def pipeline_root(self) -> str:
        return str(self.home_dir / "pipelines" / self.pipeline_name)

    @property
    def metadata_path(self) -> str:
        return str(self.home_dir / "metadata" / self.pipeline_name / "metadata.sqlite")

    @property
    def serving_dir(self) -> str:
        """``push.serving_dir`` (a folder, or a URI such as ``s3://bucket/models`` kept as it
        is), else ``<home>/serving``."""
        if self.push.serving_dir and _URI.match(self.push.serving_dir):
            return self.push.serving_dir.rstrip("/")
        return str(Path(self.push.serving_dir).expanduser().resolve()
                   if self.push.serving_dir else self.home_dir / "serving")

    @property
    def weights_cache_dir(self) -> str:
        return str(self.home_dir / "weights")

    # ---- (de)serialisation -------------------------------------------------
    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self, keys: Optional[List[str]] = None) -> str:
        """JSON of the whole config, or of only ``keys`` (sections or dotted fields), so a
        component's cache key changes only when a setting it uses changes."""
        raw = self.to_dict()
        if keys is None:
            return json.dumps(raw, sort_keys=True)
        out: Dict[str, Any] = {}
        for key in keys:
            src, dst, parts = raw, out, key.split(".")
            for part in parts[:-1]:
                src, dst = src[part], dst.setdefault(part, {})
            dst[parts[-1]] = src[parts[-1]]
        return json.dumps(out, sort_keys=True)

    @classmethod
    def from_dict(cls, raw: Dict[str, Any]) -> "LensflowConfig":
        cfg = _build(cls, raw or {}, "")
        validate(cfg)
        return cfg

    @classmethod
    def from_json(cls, text: str) -> "LensflowConfig":
        return cls.from_dict(json.loads(text))

    def replace(self, **dotted: Any) -> "LensflowConfig":
        """A copy with dotted keys (``train.epochs=2``) overridden."""
        raw = self.to_dict()
        for key, value in dotted.items():
            set_dotted(raw, key, value)
        return LensflowConfig.from_dict(raw)


def _build(cls, raw: Dict[str, Any], prefix: str):
    if not isinstance(raw, dict):
        raise ConfigError(f"{prefix or 'config'}: expected a mapping, got {raw!r}")
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise ConfigError(f"unknown config key(s) {', '.join(prefix + k for k in unknown)}; "
                          f"known: {', '.join(sorted(known))}")
    kwargs = {}
    for name, value in raw.items():
        default = cls.__dataclass_fields__[name]
        sub = _nested_type(cls, default)
        kwargs[name] = _build(sub, value, f"{prefix}{name}.") if sub else value
    try:
        return cls(**kwargs)
    except ValidationError as err:
        raise ConfigError(_describe(err, prefix)) from None


def _describe(err: ValidationError, prefix: str) -> str:
    """One line per wrong value: ``train.learning_rate='fast': Input should be a valid number``."""
    lines = []
    for problem in err.errors():
        key = prefix + ".".join(str(part) for part in problem["loc"])
        lines.append(f"{key}={problem.get('input')!r}: {problem['msg']}")
    return "; ".join(lines)


def _nested_type(cls, fld):
    factory = fld.default_factory if fld.default_factory is not dataclasses.MISSING else None
    if factory is not None and dataclasses.is_dataclass(factory):
        return factory
    return None


def set_dotted(raw: Dict[str, Any], key: str, value: Any) -> None:
    """Set ``raw['a']['b'] = value`` for key ``a.b``."""
    parts = key.split(".")
    node = raw
    for part in parts[:-1]:
        if part not in node or not isinstance(node[part], dict):
            raise ConfigError(f"unknown config section {part!r} in {key!r}")
        node = node[part]
    if parts[-1] not in node:
        raise ConfigError(f"unknown config key {key!r}")
    node[parts[-1]] = value


def choices(key: str) -> Tuple[str, ...]:
    """Allowed values of a dotted config key with a closed set (``"model.family"``)."""
    return tuple(_CHOICES[tuple(key.split("."))])


class _FamilyChoices:
    """``auto`` and the registered families, read live (a family registered later counts)."""

    def __iter__(self):
        return iter((AUTO, *FAMILIES))

    def __contains__(self, name) -> bool:
        return name == AUTO or name in FAMILIES


_CHOICES = {
    ("data", "label_conflicts"): ("reject", "majority", "keep"),
    ("data", "presplit_duplicates"): ("drop_held_out", "drop_train", "keep"),
    ("image", "color_mode"): ("grayscale", "rgb"),
    ("image", "resize_policy"): ("stretch", "pad", "crop"),
    ("augment", "preset"): AUGMENT_PRESETS,
    ("model", "family"): _FamilyChoices(),
    ("model", "backbone"): BACKBONES,
    ("model", "filter_mode"): ("fixed", "init"),
    ("train", "optimizer"): ("adam", "adamw", "sgd"),
    ("train", "lr_schedule"): ("constant", "cosine"),
    ("train", "precision"): ("float32", "mixed_bfloat16", "mixed_float16", "auto"),
    ("train", "distribution"): DISTRIBUTIONS,
    ("drift", "policy"): ("report-only", "gate"),
    ("beam", "runner"): ("DirectRunner", "PortableRunner", "DataflowRunner",
                         "FlinkRunner", "SparkRunner"),
    ("beam", "direct_running_mode"): ("in_memory", "multi_threading", "multi_processing"),
}


def validate(cfg: LensflowConfig) -> None:
    """Reject values that would only fail deep inside a component: every section's own rules,
    then the rules across sections (checked once, before a run)."""
    validate_sections(cfg, cfg.to_dict())
    _validate_across(cfg)


def validate_sections(cfg, given: Dict[str, Any]) -> None:
    """The rules of each section (and field) present in ``given``, read from ``cfg``."""
    def has(section: str, name: Optional[str] = None) -> bool:
        return section in given and (name is None or name in given[section])

    for (section, name), allowed in _CHOICES.items():
        value = getattr(getattr(cfg, section), name) if has(section, name) else None
        if has(section, name) and value not in allowed:
            raise ConfigError(f"{section}.{name}={value!r}; choose one of {', '.join(allowed)}")
    if has("image", "size") and cfg.image.size < 8:
        raise ConfigError(f"image.size={cfg.image.size}; must be at least 8")
    if has("train"):
        if cfg.train.epochs < 1 or cfg.train.batch_size < 1:
            raise ConfigError("train.epochs and train.batch_size must be at least 1")
        _validate_train(cfg.train)
    if has("model"):
        _validate_model_section(cfg.model)
    if has("data", "split_buckets"):
        buckets = cfg.data.split_buckets
        if set(buckets) - {"train", "eval", "test"} or not {"train", "eval"} <= set(buckets):
            raise ConfigError(f"data.split_buckets={buckets}; needs train and eval, optionally test")
        if any(int(v) < 1 for v in buckets.values()):
            raise ConfigError(f"data.split_buckets={buckets}; every bucket count must be >= 1")
    if has("evaluation", "min_accuracy") and not 0.0 <= cfg.evaluation.min_accuracy <= 1.0:
        raise ConfigError("evaluation.min_accuracy must be within [0, 1]")
    if has("push", "keep_versions") and cfg.push.keep_versions < 1:
        raise ConfigError("push.keep_versions must be at least 1")
    if has("beam"):
        _validate_beam(cfg.beam)
    if has("kubeflow"):
        _validate_kubeflow(cfg.kubeflow)


def _validate_model_section(model: ModelConfig) -> None:
    if not isinstance(model.widths, list) or not model.widths or not all(
            isinstance(w, int) and not isinstance(w, bool) and w >= 1 for w in model.widths):
        raise ConfigError(f"model.widths={model.widths!r}; expected a non-empty list of positive "
                          "integers (channels per stage)")
    if not isinstance(model.depths, list) or len(model.depths) != len(model.widths) or not all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in model.depths):
        raise ConfigError(f"model.depths={model.depths!r}; expected one integer >= 0 (residual "
                          f"blocks) per entry of model.widths={model.widths!r}")


def _validate_across(cfg: LensflowConfig) -> None:
    """Rules that join sections: a family's limits on the image, augmentation vs flip TTA."""
    model = cfg.model
    family = family_of(model.family)
    problem = family.check(cfg) if family.check else None
    if problem:
        raise ConfigError(problem)
    if model.flip_tta and not cfg.augment.allow_orientation_changes:
        raise ConfigError("model.flip_tta averages over horizontal mirrors, but "
                          "augment.allow_orientation_changes is false for this dataset")


def _validate_train(train: TrainConfig) -> None:
    if train.learning_rate <= 0:
        raise ConfigError(f"train.learning_rate={train.learning_rate}; must be positive")
    if train.weight_decay < 0:
        raise ConfigError(f"train.weight_decay={train.weight_decay}; must be >= 0")
    if not 0.0 <= train.momentum < 1.0:
        raise ConfigError(f"train.momentum={train.momentum}; must be within [0, 1)")
    if not 0.0 <= train.label_smoothing < 1.0:
        raise ConfigError(f"train.label_smoothing={train.label_smoothing}; must be within [0, 1)")
    if train.shuffle_buffer_mb < 1:
        raise ConfigError(f"train.shuffle_buffer_mb={train.shuffle_buffer_mb}; must be at least 1")
    if train.cache_budget_mb < 0:
        raise ConfigError(f"train.cache_budget_mb={train.cache_budget_mb}; must be at least 0 "
                          "(0: never cache a split in RAM)")
    if train.resume_dir is not None and not (
            os.path.isabs(train.resume_dir) or _URI.match(train.resume_dir)):
        raise ConfigError(f"train.resume_dir={train.resume_dir!r}; expected an absolute path or a "
                          "URI (s3://bucket/path, gs://bucket/path): the Trainer runs elsewhere "
                          "than the command line")
    if not 0.0 <= train.warmup_epochs <= train.epochs:
        raise ConfigError(f"train.warmup_epochs={train.warmup_epochs}; must be within "
                          f"[0, train.epochs={train.epochs}]")


def _validate_beam(beam: BeamConfig) -> None:
    if int(beam.direct_num_workers) < 1:
        raise ConfigError(f"beam.direct_num_workers={beam.direct_num_workers}; must be at least 1")
    if beam.runner == "PortableRunner" and not beam.job_endpoint:
        raise ConfigError("beam.runner=PortableRunner needs beam.job_endpoint (host:port)")
    _validate_beam_environment(beam)
    if not isinstance(beam.extra_args, list) or not all(
            isinstance(arg, str) and arg.startswith("--") for arg in beam.extra_args):
        raise ConfigError(f"beam.extra_args={beam.extra_args!r}; expected a list of '--flag=value'")


BEAM_PORTABLE_RUNNERS = ("PortableRunner", "FlinkRunner", "SparkRunner")
BEAM_ENVIRONMENTS = {
    "LOOPBACK": None,
    "EXTERNAL": "the worker pool's host:port",
    "DOCKER": "the SDK container image (lensflow's image, built from kubeflow/Dockerfile)",
    "PROCESS": 'the boot command as JSON, e.g. {"command": "/opt/apache/beam/boot"}',
}


def _validate_beam_environment(beam: BeamConfig) -> None:
    """Where portable runners run lensflow's code; each kind but LOOPBACK says where."""
    kind, where = beam.environment_type, beam.environment_config
    if kind is None:
        if where is not None:
            raise ConfigError("beam.environment_config is set but beam.environment_type is not")
        return
    if kind not in BEAM_ENVIRONMENTS:
        raise ConfigError(f"beam.environment_type={kind!r}; choose one of "
                          f"{', '.join(BEAM_ENVIRONMENTS)}")
    if beam.runner not in BEAM_PORTABLE_RUNNERS:
        raise ConfigError(f"beam.environment_type applies to {', '.join(BEAM_PORTABLE_RUNNERS)}, "
                          f"not beam.runner={beam.runner} (DataflowRunner takes lensflow's image "
                          "as --sdk_container_image in beam.extra_args)")
    needed = BEAM_ENVIRONMENTS[kind]
    if needed and not where:
        raise ConfigError(f"beam.environment_type={kind} needs beam.environment_config: {needed}")
    if not needed and where:
        raise ConfigError(f"beam.environment_type={kind} takes no beam.environment_config")
    if kind == "EXTERNAL" and not re.fullmatch(r"[^\s:/]+:\d{1,5}", where):
        raise ConfigError(f"beam.environment_config={where!r}; EXTERNAL needs the worker pool's "
                          "host:port")
    if kind == "PROCESS":
        try:
            command = json.loads(where).get("command")
        except (ValueError, AttributeError):
            command = None
        if not command:
            raise ConfigError(f"beam.environment_config={where!r}; PROCESS needs "
                              f"{BEAM_ENVIRONMENTS['PROCESS']}")


PIPELINE_ROOT_SCHEMES = ("gs", "s3")
_PVC_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


def parse_volume(spec: str) -> Tuple[str, str]:
    """``"claim:/mount/path"`` -> (claim, mount path); ConfigError when malformed."""
    claim, sep, mount = str(spec).partition(":")
    if not sep or not _PVC_NAME.match(claim) or not _is_abs_posix(mount):
        raise ConfigError(f"kubeflow.volumes entry {spec!r}; expected '<claim name>:<absolute "
                          "mount path>' with a lower-case DNS-1123 claim name")
    return claim, posixpath.normpath(mount)


def _is_abs_posix(path: str) -> bool:
    return isinstance(path, str) and path.startswith("/") and "://" not in path


def _validate_kubeflow(kf: KubeflowConfig) -> None:
    if not kf.image or any(ch.isspace() for ch in kf.image):
        raise ConfigError(f"kubeflow.image={kf.image!r}; expected a container image reference")
    scheme = kf.pipeline_root.split("://", 1)[0] if "://" in kf.pipeline_root else ""
    if scheme not in PIPELINE_ROOT_SCHEMES:
        raise ConfigError(f"kubeflow.pipeline_root={kf.pipeline_root!r}; expected an object "
                          "store URI such as gs://bucket/lensflow or s3://bucket/lensflow (TFX "
                          "writes it with tf.io.gfile, which cannot write minio://)")
    if not re.match(r"^[A-Za-z0-9.\-]+(:[0-9]+)?$", str(kf.s3_endpoint)):
        raise ConfigError(f"kubeflow.s3_endpoint={kf.s3_endpoint!r}; expected host:port "
                          "without a scheme (the scheme follows kubeflow.s3_use_https)")
    if not _PVC_NAME.match(str(kf.s3_secret)):
        raise ConfigError(f"kubeflow.s3_secret={kf.s3_secret!r}; expected a Kubernetes "
                          "secret name")
    for name in ("serving_dir", "data_path", "workdir"):
        value = getattr(kf, name)
        if not (_is_abs_posix(value) or (name != "workdir" and _URI.match(str(value)))):
            raise ConfigError(f"kubeflow.{name}={value!r}; expected an absolute path inside the "
                              "pipeline's pods (mount a volume there)"
                              + ("" if name == "workdir" else " or a URI (s3://, gs://)"))
    if not isinstance(kf.volumes, list):
        raise ConfigError(f"kubeflow.volumes={kf.volumes!r}; expected a list of 'claim:/path'")
    mounts = [parse_volume(spec)[1] for spec in kf.volumes]
    if len(set(mounts)) != len(mounts):
        raise ConfigError(f"kubeflow.volumes={kf.volumes}; two claims share a mount path")
    _validate_resources(kf)


def quantity(value: Any, key: str) -> float:
    """A positive Kubernetes quantity (``"500m"``, ``2``, ``"8Gi"``, ``"4G"``) as a number of
    cores or bytes; ConfigError naming ``key`` otherwise."""
    from kubernetes.utils import parse_quantity

    try:
        number = float(parse_quantity(value)) if not isinstance(value, bool) else -1.0
    except (ValueError, TypeError):
        number = -1.0
    if number <= 0:
        raise ConfigError(f"{key}={value!r}; expected a positive Kubernetes quantity "
                          "(cpu: 2 or 500m; memory: 8Gi or 512Mi)")
    return number


def _validate_resources(kf: KubeflowConfig) -> None:
    for task, entry in kf.resources.items():  # the schema made both levels mappings
        prefix = f"kubeflow.resources.{task}"
        unknown = sorted(set(entry) - set(RESOURCE_KEYS))
        if unknown:
            raise ConfigError(f"unknown key(s) {', '.join(f'{prefix}.{k}' for k in unknown)}; "
                              f"known: {', '.join(RESOURCE_KEYS)}")
        for key in ("cpu", "memory", "cpu_request", "memory_request"):
            if key in entry:
                quantity(entry[key], f"{prefix}.{key}")
        if ("gpu" in entry or "gpu_type" in entry) and task not in GPU_TASKS:
            raise ConfigError(f"{prefix}.gpu: only {' and '.join(GPU_TASKS)} train models; "
                              "set a GPU on those tasks, not on this one")
        gpu = entry.get("gpu")
        if "gpu" in entry and (not isinstance(gpu, int) or isinstance(gpu, bool) or gpu < 1):
            raise ConfigError(f"{prefix}.gpu={gpu!r}; expected a whole number of GPUs >= 1")
        if "gpu_type" in entry and ("gpu" not in entry or not isinstance(entry["gpu_type"], str)
                                    or not entry["gpu_type"]):
            raise ConfigError(f"{prefix}.gpu_type={entry['gpu_type']!r}; expected the GPU's "
                              "Kubernetes resource name (e.g. nvidia.com/gpu) beside gpu")
        selector = entry.get("node_selector", {})
        if not isinstance(selector, dict) or not all(
                isinstance(k, str) and k and isinstance(v, str) for k, v in selector.items()):
            raise ConfigError(f"{prefix}.node_selector={selector!r}; expected a mapping of "
                              "node label to value (strings)")
    for task in kf.resources:
        merged = kf.resources_for(task)
        for kind in ("cpu", "memory"):
            if f"{kind}_request" in merged and kind in merged and \
                    quantity(merged[f"{kind}_request"], "") > quantity(merged[kind], ""):
                raise ConfigError(f"kubeflow.resources.{task}.{kind}_request="
                                  f"{merged[kind + '_request']!r} exceeds its limit "
                                  f"{kind}={merged[kind]!r} (default entry included)")


def load_config(path: Optional[str] = None, overrides: Optional[Dict[str, Any]] = None
                ) -> LensflowConfig:
    """Load YAML (if given), then apply dotted overrides whose value is not None."""
    raw: Dict[str, Any] = LensflowConfig().to_dict()
    if path:
        with open(path, encoding="utf-8") as fh:
            loaded = yaml.safe_load(fh) or {}
        raw = _merge(raw, loaded, "")
    for key, value in (overrides or {}).items():
        if value is not None:
            set_dotted(raw, key, value)
    return LensflowConfig.from_dict(raw)


def _merge(base: Dict[str, Any], update: Dict[str, Any], prefix: str) -> Dict[str, Any]:
    if not isinstance(update, dict):
        raise ConfigError(f"{prefix or 'config file'}: expected a mapping")
    out = dict(base)
    for key, value in update.items():
        if key not in base:
            raise ConfigError(f"unknown config key {prefix}{key}; known: {', '.join(sorted(base))}")
        if isinstance(base[key], dict) and isinstance(value, dict) and \
                key not in FREE_FORM_MAPPINGS:
            out[key] = _merge(base[key], value, f"{prefix}{key}.")
        else:
            out[key] = value
    return out


class ComponentConfig:
    """The config sections one component was given, typed and validated, and nothing else.

    The pipeline passes each component only the keys it uses (``LensflowConfig.to_json(keys)``)
    so its cache key moves only with them. Here those keys are checked by the same schema as the
    whole config (types, ranges, choices, each named by its dotted key); the rules across sections
    were checked once, before the run. Reading a section or field the component was not given is
    an error naming it, never a silent default. Derived values (``home_dir``,
    ``effective_normalize``) are computed from the given sections the same way."""

    def __init__(self, raw: Dict[str, Any], component: str):
        if not isinstance(raw, dict):
            raise ConfigError(f"{component}: config must be a mapping, got {raw!r}")
        self._given = raw
        self._component = component
        self._cfg = _build(LensflowConfig, raw, "")
        validate_sections(self._cfg, raw)

    @classmethod
    def from_json(cls, text: str, component: str) -> "ComponentConfig":
        return cls(json.loads(text), component)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        derived = getattr(LensflowConfig, name, None)
        if isinstance(derived, property):
            return derived.fget(self)
        if name not in self._given:
            raise ConfigError(f"{self._component} was not given config section {name!r} (given: "
                              f"{', '.join(sorted(self._given))}); pass it in pipeline/pipeline.py")
        value = getattr(self._cfg, name)
        given = self._given[name]
        if dataclasses.is_dataclass(value) and isinstance(given, dict) and \
                set(given) != {f.name for f in dataclasses.fields(value)}:
            return _PartialSection(value, set(given), name, self._component)
        return value

    @property
    def sections(self) -> List[str]:
        return sorted(self._given)

    def to_dict(self) -> Dict[str, Any]:
        """The given keys with their validated values."""
        full = self._cfg.to_dict()
        return {name: ({key: full[name][key] for key in value} if isinstance(value, dict)
                       and isinstance(full[name], dict) and name not in FREE_FORM_MAPPINGS
                       else full[name])
                for name, value in self._given.items()}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    def replace(self, **dotted: Any) -> "ComponentConfig":
        """A copy with dotted keys (``train.epochs=2``) overridden; they must be given keys."""
        raw = self.to_dict()
        for key, value in dotted.items():
            set_dotted(raw, key, value)
        return ComponentConfig(raw, self._component)


class _PartialSection:
    """A section of which a component was given some fields (``evaluation.top_k``)."""

    def __init__(self, section, names, prefix: str, component: str):
        self._section, self._names, self._prefix, self._component = section, names, prefix, component

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        if name not in self._names:
            raise ConfigError(f"{self._component} was not given config key {self._prefix}.{name} "
                              f"(given: {', '.join(sorted(self._names))}); pass it in "
                              "pipeline/pipeline.py")
        return getattr(self._section, name)


def from_custom_config(custom_config: Optional[Dict[str, Any]], component: str) -> ComponentConfig:
    """The component's own typed config sections from TFX's ``custom_config``."""
    if not custom_config or CUSTOM_CONFIG_KEY not in custom_config:
        raise ConfigError(f"{component}: custom_config holds no {CUSTOM_CONFIG_KEY!r}")
    value = custom_config[CUSTOM_CONFIG_KEY]
    return ComponentConfig.from_json(value, component) if isinstance(value, str) else \
        ComponentConfig(value, component)
