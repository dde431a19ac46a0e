"""Options every ``lensflow`` command shares: the home directory and the config file."""
from contextlib import ExitStack, contextmanager

import click
import yaml

from lensflow.pipeline.config import ConfigError, LensflowConfig, load_config

home_option = click.option("--home", envvar="LENSFLOW_HOME", type=click.Path(file_okay=False),
                           help="Artifacts, metadata and serving dir [env LENSFLOW_HOME; ~/.lensflow].")
config_option = click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False),
                             help="YAML config file; flags override it.")


set_option = click.option(
    "--set", "sets", multiple=True, metavar="KEY=VALUE",
    help="Any config key, dotted, e.g. --set train.weight_decay=5e-4 --set model.widths=[16,32] "
         "(YAML values; repeatable; the named flags win over it).")


def parse_sets(sets) -> dict:
    """``("train.epochs=2", "model.widths=[8,16]")`` -> ``{"train.epochs": 2, ...}`` (YAML values)."""
    parsed = {}
    for item in sets or ():
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise click.UsageError(f"--set {item!r}: expected KEY=VALUE, e.g. train.epochs=2")
        try:
            parsed[key.strip()] = yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise click.UsageError(f"--set {item!r}: the value is not valid YAML: {err}") from err
    return parsed


def explicit_keys(config_file, sets=(), **overrides) -> frozenset:
    """The dotted keys the user set: in the YAML file, by ``--set`` or by a named flag (what
    ``model.family: auto`` must not override)."""
    keys = {key for key, value in overrides.items() if value is not None}
    keys |= set(parse_sets(sets))
    if config_file:
        with open(config_file, encoding="utf-8") as fh:
            raw = yaml.safe_load(fh) or {}
        for section, value in (raw.items() if isinstance(raw, dict) else ()):
            keys |= {f"{section}.{key}" for key in value} if isinstance(value, dict) else {section}
    return frozenset(keys)


def make_config(config_file, home, sets=(), **overrides) -> LensflowConfig:
    """Load YAML, then ``--set`` values, then the named flags; config errors become usage
    errors that name the dotted key."""
    named = {key: value for key, value in overrides.items() if value is not None}
    try:
        return load_config(config_file, {"home": home, **parse_sets(sets), **named})
    except ConfigError as err:
        raise click.UsageError(str(err)) from err


wait_option = click.option(
    "--wait", is_flag=True, default=False,
    help="When another lensflow run holds this home, wait for it instead of refusing.")


@contextmanager
def holding_home(home, wait: bool):
    """Hold the home's lock (``lensflow.pipeline.home_lock``) for the block; a busy home is a click
    error (exit 1) naming the home and the other run, or with ``wait`` a notice and a wait."""
    from lensflow.pipeline import home_lock

    def notice(holder):
        click.echo(f"waiting: another lensflow process is using the home {home} "
                   f"({home_lock.describe_holder(holder)})", err=True)

    with ExitStack() as stack:
        try:
            stack.enter_context(home_lock.hold(home, wait=wait, on_wait=notice))
        except home_lock.HomeBusy as err:
            raise click.ClickException(str(err)) from err
        yield
