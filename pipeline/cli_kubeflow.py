"""``lensflow compile`` and ``lensflow submit``: the pipeline on Kubeflow Pipelines v2.

Registered on the main group by ``pipeline.cli``. Both commands read the same config as
``lensflow run``; its ``kubeflow`` section says which image, pipeline root and pod paths to use.
"""
from __future__ import annotations

import os
import tempfile

import click

from pipeline.cli_options import config_option, make_config

image_option = click.option("--image", help="Container image of every step [kubeflow.image].")
root_option = click.option(
    "--pipeline-root", help="Artifact root, e.g. gs://bucket/lensflow [kubeflow.pipeline_root].")


def _kubeflow_config(config_file, image, pipeline_root):
    return make_config(config_file, None, **{"kubeflow.image": image,
                                             "kubeflow.pipeline_root": pipeline_root})


def _compile(cfg, out: str) -> None:
    from pipeline.runners import kubeflow

    try:
        info = kubeflow.compile_package(cfg, out)
    except (ValueError, kubeflow.KubeflowSpecError) as err:
        raise click.ClickException(str(err)) from err
    click.echo(f"compiled {len(info['components'])} components -> {info['path']}\n"
               f"  image: {info['image']}\n  pipeline root: {info['pipeline_root']}")
    for label, mounts in sorted(info["mounts"].items()):
        click.echo(f"  {label} mounts {', '.join(mounts)}")
    click.echo(f"  cache off for: {', '.join(info['uncached'])}")
    if info["note"]:
        click.echo(f"  note: {info['note']}")


@click.command("compile")
@config_option
@click.option("--target", type=click.Choice(["kubeflow"]), default="kubeflow", show_default=True,
              help="Orchestrator to compile for.")
@click.option("--out", required=True, type=click.Path(dir_okay=False),
              help=".yaml: PipelineSpec for kfp.Client / the KFP UI; .json: full PipelineJob.")
@image_option
@root_option
def compile_command(config_file, target, out, image, pipeline_root):
    """Compile the pipeline for Kubeflow Pipelines v2 (KubeflowV2DagRunner)."""
    del target
    if not out.lower().endswith((".yaml", ".yml", ".json")):
        raise click.UsageError(f"--out {out!r}: use a .yaml (or .json) file name")
    _compile(_kubeflow_config(config_file, image, pipeline_root), out)


@click.command("submit")
@config_option
@click.option("--host", required=True, envvar="KFP_HOST",
              help="KFP API endpoint, e.g. http://localhost:8080 [env KFP_HOST].")
@click.option("--experiment", default="lensflow", show_default=True)
@click.option("--run-name", help="Display name of the run [package name + time].")
@click.option("--package", type=click.Path(dir_okay=False),
              help="Compiled .yaml to submit; compiled first when missing [a temporary one].")
@click.option("--no-cache", is_flag=True, default=False, help="Run every step, cached or not.")
@image_option
@root_option
def submit_command(config_file, host, experiment, run_name, package, no_cache, image,
                   pipeline_root):
    """Submit a run to Kubeflow Pipelines (kfp.Client), compiling the package if needed."""
    from pipeline.runners import kubeflow

    cfg = _kubeflow_config(config_file, image, pipeline_root)
    try:
        kubeflow.check_submittable(cfg)
    except ValueError as err:
        raise click.UsageError(str(err)) from err
    with tempfile.TemporaryDirectory(prefix="lensflow-kfp-") as tmp:
        path = package or os.path.join(tmp, "pipeline.yaml")
        if package and not package.lower().endswith((".yaml", ".yml")):
            raise click.UsageError(f"--package {package!r}: kfp.Client takes the .yaml package")
        if not os.path.exists(path):
            _compile(cfg, path)
        run_id = _submit(kubeflow, cfg, host, path, experiment, run_name, no_cache)
    click.echo(f"submitted run {run_id} to {host} (experiment '{experiment}')")


def _submit(kubeflow, cfg, host, path, experiment, run_name, no_cache) -> str:
    """Submit, turning the KFP API's refusals and unreachable hosts into one-line errors."""
    import urllib3
    from kfp_server_api.exceptions import ApiException

    try:
        return kubeflow.submit(cfg, host, path, experiment=experiment, run_name=run_name,
                               no_cache=no_cache)
    except ApiException as err:
        body = err.body.decode("utf-8", "replace") if isinstance(err.body, bytes) else err.body
        raise click.ClickException(f"KFP at {host} answered {err.status} {err.reason}: "
                                   f"{(body or '').strip()[:500]}") from err
    except urllib3.exceptions.HTTPError as err:
        raise click.ClickException(f"cannot reach KFP at {host}: {err}") from err
