"""The Trainer as a multi-worker TFJob for Kubeflow's Training Operator, rendered from
``kubeflow/training/tfjob.yaml.j2``.

The compiled pipeline runs the Trainer as one KFP task (several GPUs of one node via
``kubeflow.resources.Trainer.gpu`` and ``train.distribution``). Training across machines is a
TFJob: N ``Worker`` replicas, each running ``python -m lensflow.components.trainer.job SPEC`` with the
same spec (a finished run's Transform and DataGate artifact URIs, output URIs under a shared
store, the Trainer's config slice); the operator sets ``TF_CONFIG`` in each, ``train.distribution:
auto`` turns that into MultiWorkerMirroredStrategy and worker 0 writes the model. Image, working
directory, S3 settings and the Trainer's resources come from the ``kubeflow`` config section, as
for the pipeline's own tasks.

``python -m lensflow.pipeline.runners.tfjob --inputs INPUTS.json --output-base URI --workers N`` prints the
manifest (``kubectl apply -f -``); ``--config`` and ``--set`` as for ``lensflow run``.
"""
from __future__ import annotations

import json
import posixpath
import re
from typing import Any, Dict, List, Optional

import click
import jinja2
import yaml

from lensflow.pipeline.cli_options import config_option, make_config, set_option
from lensflow.pipeline.config import REPO_ROOT, ConfigError, LensflowConfig
from lensflow.pipeline.pipeline import TRAINER_KEYS
from lensflow.pipeline.runners.kubeflow import S3_SECRET_KEYS, is_s3, s3_environment

TEMPLATE = REPO_ROOT / "kubeflow" / "training" / "tfjob.yaml.j2"
INPUT_KEYS = ("examples", "split_names", "transform_graph", "schema")
_DNS_1123 = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def job_spec(cfg: LensflowConfig, inputs: Dict[str, str], output_base: str) -> Dict[str, Any]:
    """What every replica executes: the inputs, ``<output_base>/model`` and ``/model_run``, and
    the Trainer's config slice (as the pipeline gives it), its epoch backups under
    ``<output_base>/resume`` unless ``train.resume_dir`` says where (a restarted replica must
    find the chief's backups, so not on a pod's own disk)."""
    missing = [key for key in INPUT_KEYS if not inputs.get(key)]
    if missing:
        raise ConfigError(f"TFJob inputs lack {', '.join(missing)} (the URIs of a run's "
                          "Transform transformed_examples, transform_graph and DataGate schema)")
    if "://" not in output_base and not output_base.startswith("/"):
        raise ConfigError(f"TFJob --output-base={output_base!r}; expected a URI every replica "
                          "can write (gs://, s3://) or an absolute path on a shared volume")
    if cfg.train.resume and not cfg.train.resume_dir:
        cfg = cfg.replace(**{"train.resume_dir": posixpath.join(output_base, "resume")})
    return {**{key: inputs[key] for key in INPUT_KEYS},
            "model": posixpath.join(output_base, "model"),
            "model_run": posixpath.join(output_base, "model_run"),
            "config": json.loads(cfg.to_json(TRAINER_KEYS))}


def render(cfg: LensflowConfig, spec: Dict[str, Any], *, name: str = "lensflow-trainer",
           workers: int = 2, namespace: str = "kubeflow", backoff_limit: int = 3) -> str:
    """The TFJob manifest as YAML text."""
    if not _DNS_1123.match(name):
        raise ConfigError(f"TFJob name {name!r}; expected a lower-case DNS-1123 label")
    if not _DNS_1123.match(namespace):
        raise ConfigError(f"TFJob namespace {namespace!r}; expected a lower-case DNS-1123 label")
    if workers < 1:
        raise ConfigError(f"TFJob workers={workers}; must be at least 1")
    resources = cfg.kubeflow.resources_for("Trainer")
    limits: List = [(key, resources[key]) for key in ("cpu", "memory") if key in resources]
    if "gpu" in resources:
        limits.append((resources["gpu_type"], resources["gpu"]))
    requests = [(key, resources[f"{key}_request"]) for key in ("cpu", "memory")
                if f"{key}_request" in resources]
    environment = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATE.parent)),
                                     undefined=jinja2.StrictUndefined, autoescape=False)
    return environment.get_template(TEMPLATE.name).render(
        name=name, namespace=namespace, workers=workers, backoff_limit=backoff_limit,
        image=cfg.kubeflow.image, workdir=cfg.kubeflow.workdir,
        spec_json=json.dumps(spec, sort_keys=True),
        env=sorted(s3_environment(cfg).items()),
        secret_env=sorted(S3_SECRET_KEYS.items()) if is_s3(cfg) else [],
        secret=cfg.kubeflow.s3_secret, limits=limits, requests=requests,
        node_selector=sorted((resources.get("node_selector") or {}).items())) + "\n"


def manifest(cfg: LensflowConfig, inputs: Dict[str, str], output_base: str,
             **options: Any) -> Dict[str, Any]:
    """The rendered TFJob, parsed."""
    return yaml.safe_load(render(cfg, job_spec(cfg, inputs, output_base), **options))


@click.command()
@click.option("--inputs", "inputs_path", required=True, type=click.Path(exists=True),
              help="JSON with examples, split_names, transform_graph, schema (artifact URIs).")
@click.option("--output-base", required=True,
              help="Shared URI the chief writes model/ and model_run/ under.")
@click.option("--workers", default=2, show_default=True, type=click.IntRange(min=1))
@click.option("--name", default="lensflow-trainer", show_default=True)
@click.option("--namespace", default="kubeflow", show_default=True)
@config_option
@set_option
def main(inputs_path: str, output_base: str, workers: int, name: str, namespace: str,
         config_file: Optional[str], sets) -> None:
    """Print the Trainer's multi-worker TFJob manifest."""
    cfg = make_config(config_file, None, sets)
    with open(inputs_path, encoding="utf-8") as fh:
        inputs = json.load(fh)
    try:
        spec = job_spec(cfg, inputs, output_base)
        click.echo(render(cfg, spec, name=name, workers=workers, namespace=namespace), nl=False)
    except ConfigError as err:
        raise click.UsageError(str(err)) from None


if __name__ == "__main__":
    main()
