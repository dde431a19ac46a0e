"""``lensflow report``: write the self-contained HTML report of a run (or of a comparison)."""
from __future__ import annotations

import click

from pipeline.cli_options import config_option, home_option, make_config


@click.command()
@home_option
@config_option
@click.option("--run", "run_id", default="latest", show_default=True,
              help="Run id (see `lensflow summary`) or 'latest'.")
@click.option("--compare", "compare_path", type=click.Path(exists=True),
              help="Instead of a run: the page of a `lensflow compare` (its folder or compare.json).")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False),
              help="HTML file to write (one file, images inlined, opens offline).")
def report(home, config_file, run_id, compare_path, out_path):
    """Write the HTML report of a run: data, metrics, validation, training, interpretability."""
    if compare_path:
        _compare_report(compare_path, out_path)
        return
    from components.report.render import write_report
    from pipeline.summary import RunNotFound

    cfg = make_config(config_file, home)
    try:
        path = write_report(cfg.metadata_path, run_id, out_path)
    except (RunNotFound, IsADirectoryError) as err:
        raise click.ClickException(str(err)) from err
    click.echo(f"report written to {path}")


def _compare_report(compare_path: str, out_path: str) -> None:
    """Re-render a comparison's page (table and accuracy chart) from its compare.json."""
    from components.report import compare

    try:
        path = compare.write_html(compare.load(compare_path), out_path)
    except (FileNotFoundError, ValueError, KeyError) as err:
        raise click.ClickException(f"{compare_path}: {err}") from err
    click.echo(f"comparison report written to {path}")
