"""``lensflow compile``, ``lensflow rehearse`` and ``lensflow submit``: the pipeline on Kubeflow
Pipelines v2.

Registered on the main group by ``lensflow.pipeline.cli``. ``compile`` and ``submit`` read the same config
as ``lensflow run``; its ``kubeflow`` section says which image, pipeline root and pod paths to use.
``rehearse`` reads only the compiled package.
"""
from __future__ import annotations

import os
import tempfile

import click

from lensflow.pipeline.cli_options import config_option, make_config

image_option = click.option("--image", help="Container image of every step [kubeflow.image].")
root_option = click.option(
    "--pipeline-root", help="Artifact root, e.g. gs://bucket/lensflow [kubeflow.pipeline_root].")


def _kubeflow_config(config_file, image, pipeline_root):
    return make_config(config_file, None, **{"kubeflow.image": image,
                                             "kubeflow.pipeline_root": pipeline_root})


def _compile(cfg, out: str) -> None:
    from lensflow.pipeline.runners import kubeflow

    try:
        info = kubeflow.compile_package(cfg, out)
    except (ValueError, kubeflow.KubeflowSpecError) as err:
        raise click.ClickException(str(err)) from err
    click.echo(f"compiled {len(info.components)} components -> {info.path}\n"
               f"  image: {info.image}\n  pipeline root: {info.pipeline_root}")
    for label, mounts in sorted(info.mounts.items()):
        click.echo(f"  {label} mounts {', '.join(mounts)}")
    if info.secret:
        click.echo(f"  S3 credentials from secret {info.secret} (accesskey, secretkey)")
    click.echo(f"  cache off for: {', '.join(info.uncached)}")
    if info.note:
        click.echo(f"  note: {info.note}")


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
    from lensflow.pipeline.runners import kubeflow

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


@click.command("rehearse")
@click.argument("package", type=click.Path(exists=True, dir_okay=False))
@click.option("--mount", "mounts", multiple=True, metavar="CLAIM=DIR",
              help="Local folder standing in for a PVC (by claim name or mount path); repeat.")
@click.option("--secret", "secrets", multiple=True, metavar="SECRET.KEY=VALUE",
              help="A key of a Kubernetes secret the package reads as env; repeat.")
@click.option("--env", "env", multiple=True, metavar="NAME=VALUE",
              help="Override a variable of the tasks' environment (e.g. S3_ENDPOINT); repeat.")
@click.option("--pipeline-root", help="Artifact root [the package's defaultPipelineRoot].")
@click.option("--state-dir", type=click.Path(file_okay=False),
              help="Logs, task folders and the cache [<package>.rehearsal beside the package].")
@click.option("--run-id", help="Run id in the artifact URIs [rehearsal-<time>].")
@click.option("--no-cache", is_flag=True, default=False, help="Run every task, cached or not.")
def rehearse_command(package, mounts, secrets, env, pipeline_root, state_dir, run_id, no_cache):
    """Execute a compiled .yaml package locally, task by task, as KFP v2 would (no cluster)."""
    from lensflow.pipeline.config import REPO_ROOT
    from lensflow.pipeline.runners import rehearse

    try:
        rehearser = rehearse.Rehearser(
            package, state_dir=state_dir or os.path.splitext(package)[0] + ".rehearsal",
            mounts=rehearse.parse_assignments(mounts, "--mount"),
            secrets=rehearse.parse_secrets(secrets), env=rehearse.parse_assignments(env, "--env"),
            dockerfile=str(REPO_ROOT / "kubeflow" / "Dockerfile"), workdir=str(REPO_ROOT),
            pipeline_root=pipeline_root, enable_cache=not no_cache, run_id=run_id,
            echo=click.echo)
        result = rehearser.run()
    except ValueError as err:
        raise click.UsageError(str(err)) from err
    except rehearse.RehearsalError as err:
        if err.log:
            click.echo(f"--- last lines of {err.task}'s log ---\n{err.log}", err=True)
        raise click.ClickException(str(err)) from err
    states = [f"{name}: {task.state}" for name, task in result.tasks.items()]
    click.echo(f"rehearsal {result.run_id} finished: {', '.join(states)}\n"
               f"  artifacts under {result.run_root}")
