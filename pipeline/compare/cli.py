"""``lensflow compare``: run the article's levers as named variants over several seeds.

Registered on the main group by ``lensflow.pipeline.cli``. Variants are config overrides
(``pipeline/compare/variants.py``) on top of the same config ``lensflow run`` reads.
"""
from __future__ import annotations

import os

import click

from lensflow.pipeline.cli_options import (config_option, holding_home, home_option, make_config, set_option,
                                  wait_option)
from lensflow.pipeline.compare.variants import VARIANTS

DEFAULT_VARIANTS = ",".join(VARIANTS)


@click.command("compare")
@home_option
@config_option
@click.option("--data", type=click.Path(exists=True, file_okay=False),
              help="Image folder (class folders or train/test tree) [data.path].")
@click.option("--variants", default=DEFAULT_VARIANTS, show_default=True,
              help=f"Comma-separated, from: {', '.join(VARIANTS)}.")
@click.option("--seeds", type=click.IntRange(min=1), default=3, show_default=True,
              help="Runs per variant; train.seed = base seed + i.")
@click.option("--subset", type=click.IntRange(min=1),
              help="Train on N class-balanced images; evaluate on the full held-out split.")
@click.option("--epochs", type=int)
@click.option("--batch-size", type=int)
@click.option("--out", "out_dir", type=click.Path(file_okay=False),
              help="Output folder [<home>/compare/<timestamp>].")
@wait_option
@set_option
def compare(home, config_file, data, variants, seeds, subset, epochs, batch_size, out_dir, wait,
            sets):
    """Compare variants (baseline, augment, transfer_*, filter_*) over seeds, side by side.

    Writes compare.json, compare.md (a table for docs/RESULTS.md) and compare.html.
    """
    from lensflow.pipeline.compare.run import CompareError, ComparePlan, run_compare
    from lensflow.pipeline.compare.variants import parse_variants
    from lensflow.pipeline.config import ConfigError
    from lensflow.components.image_example_gen.scan import DatasetError

    cfg = make_config(config_file, home, sets, **{
        "data.path": os.path.abspath(data) if data else None,
        "train.epochs": epochs, "train.batch_size": batch_size})
    if data:
        cfg = cfg.replace(**{"data.manifest": None})
    try:
        plan = ComparePlan(parse_variants(variants), seeds, subset, out_dir, config_file,
                           tuple(sets))
    except ConfigError as err:
        raise click.UsageError(str(err)) from err
    click.echo(f"lensflow compare: {', '.join(plan.variants)} x {seeds} seed(s) on "
               f"{cfg.data.manifest or cfg.data.path}"
               + (f", training subset {subset}" if subset else ""))
    try:
        with holding_home(cfg.home_dir, wait):  # once for all its runs (the lock is re-entrant)
            result = run_compare(cfg, plan, show_progress=True, echo=click.echo)
    except (CompareError, DatasetError, ConfigError) as err:
        raise click.ClickException(str(err)) from err
    with open(result["paths"]["markdown"], encoding="utf-8") as fh:
        click.echo("\n" + fh.read())
    for kind, path in result["paths"].items():
        click.echo(f"{kind}: {path}")
