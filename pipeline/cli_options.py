"""Options every ``lensflow`` command shares: the home directory and the config file."""
import click

from pipeline.config import ConfigError, LensflowConfig, load_config

home_option = click.option("--home", envvar="LENSFLOW_HOME", type=click.Path(file_okay=False),
                           help="Artifacts, metadata and serving dir [env LENSFLOW_HOME; ~/.lensflow].")
config_option = click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False),
                             help="YAML config file; flags override it.")


def make_config(config_file, home, **overrides) -> LensflowConfig:
    """Load YAML + dotted overrides, turning config errors into usage errors."""
    try:
        return load_config(config_file, {"home": home, **overrides})
    except ConfigError as err:
        raise click.UsageError(str(err)) from err
