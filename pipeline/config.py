"""The one typed configuration of a lensflow run.

A ``LensflowConfig`` is loaded from YAML (optional) plus CLI overrides, flows into
``create_pipeline`` and, serialised through ``custom_config``, into the Transform and
Trainer module files. Nothing else holds knobs.
"""
from __future__ import annotations

import dataclasses
import json
import os
import posixpath
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
SAMPLE_DATA = REPO_ROOT / "data" / "sample" / "fashion_mnist"
CURATED_SCHEMA = REPO_ROOT / "schemas" / "schema.pbtxt"

CUSTOM_CONFIG_KEY = "lensflow_config"


class ConfigError(ValueError):
    """A configuration value is invalid; the message names the field."""


@dataclass
class DataConfig:
    """Where the images are and how they are split."""

    path: Optional[str] = str(SAMPLE_DATA)
    manifest: Optional[str] = None
    split_buckets: Dict[str, int] = field(
        default_factory=lambda: {"train": 8, "eval": 1, "test": 1})
    max_image_pixels: int = 40_000_000
    max_file_bytes: int = 64 * 1024 * 1024


@dataclass
class ImageConfig:
    """How Transform turns encoded bytes into model input (deterministic)."""

    size: int = 28
    color_mode: str = "grayscale"
    resize_policy: str = "stretch"
    normalize: Optional[bool] = None


@dataclass
class AugmentConfig:
    """Training-only augmentation; ``preset`` fills strengths not set explicitly."""

    preset: str = "none"
    allow_orientation_changes: bool = True
    horizontal_flip: Optional[bool] = None
    vertical_flip: Optional[bool] = None
    rotation: Optional[float] = None
    zoom: Optional[float] = None
    translation: Optional[float] = None
    contrast: Optional[float] = None
    brightness: Optional[float] = None
    crop_padding: Optional[int] = None
    erasing: Optional[float] = None
    seed: int = 1234


@dataclass
class ModelConfig:
    """Which model family to build and how."""

    family: str = "baseline_cnn"
    backbone: str = "efficientnet_lite0"
    weights: Optional[str] = "imagenet"
    backbone_input_size: int = 96
    fine_tune_layers: int = 0
    fine_tune_fraction: float = 0.0
    filters: List[str] = field(
        default_factory=lambda: ["sobel_x", "sobel_y", "laplacian", "gabor"])
    filter_mode: str = "fixed"
    dropout: float = 0.25
    widths: List[int] = field(default_factory=lambda: [32, 64, 128])
    depths: List[int] = field(default_factory=lambda: [0, 0, 1])
    flip_tta: bool = False


@dataclass
class TrainConfig:
    """Optimisation settings, per phase for transfer learning."""

    epochs: int = 3
    batch_size: int = 32
    learning_rate: float = 1e-3
    fine_tune_epochs: int = 0
    fine_tune_learning_rate: float = 1e-4
    steps_per_epoch: Optional[int] = None
    seed: int = 42
    optimizer: str = "adam"
    weight_decay: float = 0.0
    momentum: float = 0.9
    lr_schedule: str = "constant"
    warmup_epochs: float = 0.0
    label_smoothing: float = 0.0
    shuffle_buffer_mb: int = 512
    precision: str = "float32"


@dataclass
class TunerConfig:
    """Optional KerasTuner stage; off by default."""

    enabled: bool = False
    max_trials: int = 4
    epochs: int = 2


@dataclass
class EvaluationConfig:
    """TFMA thresholds deciding whether a model is blessed."""

    min_accuracy: float = 0.5
    top_k: int = 3
    min_class_recall: Optional[float] = None
    max_accuracy_drop: float = 0.0
    calibration_bins: int = 10


@dataclass
class PushConfig:
    """Where blessed models go, in TF Serving's layout."""

    serving_dir: Optional[str] = None
    model_name: str = "lensflow"
    keep_versions: int = 5


@dataclass
class BeamConfig:
    """Beam runner for the Beam-powered components."""

    runner: str = "DirectRunner"
    direct_num_workers: int = 1
    direct_running_mode: str = "in_memory"
    job_endpoint: Optional[str] = None
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
    s3_endpoint: str = "minio-service.kubeflow:9000"
    s3_secret: str = "mlpipeline-minio-artifact"
    s3_region: str = "us-east-1"
    s3_use_https: bool = False


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
    push: PushConfig = field(default_factory=PushConfig)
    beam: BeamConfig = field(default_factory=BeamConfig)
    kubeflow: KubeflowConfig = field(default_factory=KubeflowConfig)

    @property
    def effective_normalize(self) -> bool:
        """Per-channel normalisation; off by default for ``transfer``, whose backbone
        applies the preprocessing its ImageNet weights expect to [0, 1] pixels."""
        if self.image.normalize is None:
            return self.model.family != "transfer"
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
    return cls(**kwargs)


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
    return _CHOICES[tuple(key.split("."))]


_CHOICES = {
    ("image", "color_mode"): ("grayscale", "rgb"),
    ("image", "resize_policy"): ("stretch", "pad", "crop"),
    ("augment", "preset"): ("none", "light", "standard"),
    ("model", "family"): ("baseline_cnn", "transfer", "filter_bank", "compact_resnet"),
    ("model", "filter_mode"): ("fixed", "init"),
    ("train", "optimizer"): ("adam", "adamw", "sgd"),
    ("train", "lr_schedule"): ("constant", "cosine"),
    ("train", "precision"): ("float32", "mixed_bfloat16", "auto"),
    ("beam", "runner"): ("DirectRunner", "PortableRunner", "DataflowRunner",
                         "FlinkRunner", "SparkRunner"),
    ("beam", "direct_running_mode"): ("in_memory", "multi_threading", "multi_processing"),
}


def validate(cfg: LensflowConfig) -> None:
    """Reject values that would only fail deep inside a component."""
    for (section, name), allowed in _CHOICES.items():
        value = getattr(getattr(cfg, section), name)
        if value not in allowed:
            raise ConfigError(f"{section}.{name}={value!r}; choose one of {', '.join(allowed)}")
    if cfg.image.size < 8:
        raise ConfigError(f"image.size={cfg.image.size}; must be at least 8")
    if cfg.train.epochs < 1 or cfg.train.batch_size < 1:
        raise ConfigError("train.epochs and train.batch_size must be at least 1")
    _validate_model(cfg)
    _validate_train(cfg.train)
    buckets = cfg.data.split_buckets
    if set(buckets) - {"train", "eval", "test"} or not {"train", "eval"} <= set(buckets):
        raise ConfigError(f"data.split_buckets={buckets}; needs train and eval, optionally test")
    if any(int(v) < 1 for v in buckets.values()):
        raise ConfigError(f"data.split_buckets={buckets}; every bucket count must be >= 1")
    if not 0.0 <= cfg.evaluation.min_accuracy <= 1.0:
        raise ConfigError("evaluation.min_accuracy must be within [0, 1]")
    if cfg.push.keep_versions < 1:
        raise ConfigError("push.keep_versions must be at least 1")
    _validate_beam(cfg.beam)
    _validate_kubeflow(cfg.kubeflow)


def _validate_model(cfg: LensflowConfig) -> None:
    model = cfg.model
    if not isinstance(model.widths, list) or not model.widths or not all(
            isinstance(w, int) and not isinstance(w, bool) and w >= 1 for w in model.widths):
        raise ConfigError(f"model.widths={model.widths!r}; expected a non-empty list of positive "
                          "integers (channels per stage)")
    if not isinstance(model.depths, list) or len(model.depths) != len(model.widths) or not all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in model.depths):
        raise ConfigError(f"model.depths={model.depths!r}; expected one integer >= 0 (residual "
                          f"blocks) per entry of model.widths={model.widths!r}")
    if model.family == "compact_resnet" and 2 ** (len(model.widths) - 1) > cfg.image.size:
        raise ConfigError(f"model.widths has {len(model.widths)} stages, each halving the image; "
                          f"too many for image.size={cfg.image.size}")
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
    if not 0.0 <= train.warmup_epochs <= train.epochs:
        raise ConfigError(f"train.warmup_epochs={train.warmup_epochs}; must be within "
                          f"[0, train.epochs={train.epochs}]")


def _validate_beam(beam: BeamConfig) -> None:
    if int(beam.direct_num_workers) < 1:
        raise ConfigError(f"beam.direct_num_workers={beam.direct_num_workers}; must be at least 1")
    if beam.runner == "PortableRunner" and not beam.job_endpoint:
        raise ConfigError("beam.runner=PortableRunner needs beam.job_endpoint (host:port)")
    if not isinstance(beam.extra_args, list) or not all(
            isinstance(arg, str) and arg.startswith("--") for arg in beam.extra_args):
        raise ConfigError(f"beam.extra_args={beam.extra_args!r}; expected a list of '--flag=value'")


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
        if not _is_abs_posix(getattr(kf, name)):
            raise ConfigError(f"kubeflow.{name}={getattr(kf, name)!r}; expected an absolute path "
                              "inside the pipeline's pods (mount a volume there)")
    if not isinstance(kf.volumes, list):
        raise ConfigError(f"kubeflow.volumes={kf.volumes!r}; expected a list of 'claim:/path'")
    mounts = [parse_volume(spec)[1] for spec in kf.volumes]
    if len(set(mounts)) != len(mounts):
        raise ConfigError(f"kubeflow.volumes={kf.volumes}; two claims share a mount path")


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
            raise ConfigError(f"unknown config key {prefix}{key!r}")
        if isinstance(base[key], dict) and isinstance(value, dict) and key != "split_buckets":
            out[key] = _merge(base[key], value, f"{prefix}{key}.")
        else:
            out[key] = value
    return out


def from_custom_config(custom_config: Optional[Dict[str, Any]]) -> LensflowConfig:
    """Rebuild the config inside a module file from TFX's ``custom_config``."""
    if not custom_config or CUSTOM_CONFIG_KEY not in custom_config:
        return LensflowConfig()
    value = custom_config[CUSTOM_CONFIG_KEY]
    return LensflowConfig.from_json(value) if isinstance(value, str) else \
        LensflowConfig.from_dict(value)
