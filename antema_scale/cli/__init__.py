"""The ``antema-scale`` command.

Each sub-command lives in its own module of this package and exposes
``register(app: typer.Typer) -> None``. Heavy imports (torch, dask) happen inside the
command functions so that ``antema-scale --help`` stays fast.
"""

from __future__ import annotations

import importlib

import typer

from antema_scale import __version__

app = typer.Typer(
    name="antema-scale",
    help="Measure every nanoparticle in TEM/STEM micrographs, from one image to thousands.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)

#: Sub-command modules, in the order a user meets them.
COMMAND_MODULES: tuple[str, ...] = (
    "antema_scale.cli.demo",
    "antema_scale.cli.ingest",
    "antema_scale.cli.analyze",
    "antema_scale.cli.train",
    "antema_scale.cli.ensemble",
    "antema_scale.cli.evaluate",
    "antema_scale.cli.report",
    "antema_scale.cli.track",
    "antema_scale.cli.synth",
    "antema_scale.cli.bench",
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"antema-scale {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Print the version."
    ),
) -> None:
    """Measure every nanoparticle in TEM/STEM micrographs, from one image to thousands."""


for _module in COMMAND_MODULES:
    importlib.import_module(_module).register(app)


def main() -> None:
    """Entry point of the ``antema-scale`` console script."""
    app()
