"""The model families the config and CLI accept are exactly the builders that exist."""
from click.testing import CliRunner

from components.trainer.models import DESCRIPTIONS, FAMILIES
from pipeline.cli import main
from pipeline.config import choices


def test_config_family_choices_match_the_registered_builders():
    assert set(choices("model.family")) == set(FAMILIES) == set(DESCRIPTIONS)


def test_cli_rejects_a_family_without_a_builder():
    result = CliRunner().invoke(main, ["run", "--model", "no_such_family"])
    assert result.exit_code != 0
    assert "no_such_family" in result.output
    for family in FAMILIES:
        assert family in result.output
