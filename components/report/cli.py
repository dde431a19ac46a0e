"""``lensflow report``: write the self-contained HTML report of a run."""
from __future__ import annotations

import click

from pipeline.cli_options import config_option, home_option, make_config


@click.command()
@home_option
@config_option
@click.option("--run", "run_id", default="latest", show_default=True,
              help="Run id (see `lensflow summary`) or 'latest'.")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False),
              help="HTML file to write (one file, images inlined, opens offline).")
def report(home, config_file, run_id, out_path):
    """Write the HTML report of a run: data, metrics, validation, training, interpretability."""
    from components.report.render import write_report
    from pipeline.summary import RunNotFound

    cfg = make_config(config_file, home)
    try:
        path = write_report(cfg.metadata_path, run_id, out_path)
    except (RunNotFound, IsADirectoryError) as err:
        raise click.ClickException(str(err)) from err
    click.echo(f"report written to {path}")
