"""The command-line entry point."""

from __future__ import annotations

from typer.testing import CliRunner

from antema_scale import __version__
from antema_scale.cli import app


def test_version_prints_package_version() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"antema-scale {__version__}"
