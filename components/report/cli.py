"""``lensflow report``: write the self-contained HTML report of a run (or of a comparison)."""
from __future__ import annotations

import click

from lensflow.pipeline import object_store
from lensflow.pipeline.cli_options import config_option, home_option, make_config


@click.command()
@home_option
@config_option
@click.option("--run", "run_id", default="latest", show_default=True,
              help="Run id (see `lensflow summary`) or 'latest'.")
@click.option("--artifacts", "artifacts_uri", metavar="URI",
              help="Instead of the local store: the folder of one Kubeflow run under the "
                   "pipeline root (<pipeline root>/<run id>, gs://, s3:// or a local copy).")
@click.option("--compare", "compare_path", type=click.Path(exists=True),
              help="Instead of a run: the page of a `lensflow compare` (its folder or compare.json).")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False),
              help="HTML file to write (one file, images inlined, opens offline).")
def report(home, config_file, run_id, artifacts_uri, compare_path, out_path):
    """Write the HTML report of a run: data, metrics, validation, training, interpretability."""
    if compare_path:
        _compare_report(compare_path, out_path)
        return
    from lensflow.components.report.render import write_artifacts_report, write_report
    from lensflow.components.report.sources import ArtifactsNotFound
    from lensflow.pipeline.summary import RunNotFound

    try:
        if artifacts_uri:
            run_root = artifacts_uri if run_id == "latest" else f"{artifacts_uri.rstrip('/')}/{run_id}"
            path = write_artifacts_report(run_root, out_path)
        else:
            path = write_report(make_config(config_file, home).metadata_path, run_id, out_path)
    except (RunNotFound, ArtifactsNotFound, IsADirectoryError) as err:
        raise click.ClickException(str(err)) from err
    click.echo(f"report written to {path}")
    if artifacts_uri and object_store.uses_s3(artifacts_uri):
        object_store.exit_now(0)


def _compare_report(compare_path: str, out_path: str) -> None:
    """Re-render a comparison's page (table and accuracy chart) from its compare.json."""
    from lensflow.components.report import compare

    try:
        path = compare.write_html(compare.load(compare_path), out_path)
    except (FileNotFoundError, ValueError, KeyError) as err:
        raise click.ClickException(f"{compare_path}: {err}") from err
    click.echo(f"comparison report written to {path}")
