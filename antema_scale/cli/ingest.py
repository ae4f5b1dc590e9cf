"""``antema-scale ingest``: microscope files, folders and globs -> one Zarr store."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

_LOCAL_SCHEDULERS = ("threads", "processes", "synchronous")


def parse_pixel_size(text: str | None) -> float | tuple[float, float] | None:
    """``"0.25"`` -> 0.25 nm; ``"0.2,1.0"`` -> (y, x) = (0.2, 1.0) nm; None stays None.

    Raises
    ------
    typer.BadParameter
        If the text is not one or two positive numbers.
    """
    if text is None:
        return None
    try:
        values = [float(part) for part in text.split(",")]
    except ValueError as error:
        raise typer.BadParameter(f"{text!r} is not a number or Y,X pair") from error
    if len(values) not in (1, 2) or any(not value > 0 for value in values):
        raise typer.BadParameter(f"{text!r}: give one positive number, or Y,X")
    return values[0] if len(values) == 1 else (values[0], values[1])


def _summary_table(report: Any) -> Any:
    from rich.table import Table

    summary = report.summary()
    table = Table(title=f"ingest into {report.store}")
    table.add_column("ingested", justify="right")
    table.add_column("skipped", justify="right")
    table.add_column("errors", justify="right")
    table.add_column("MB read", justify="right")
    table.add_column("seconds", justify="right")
    table.add_column("MB/s", justify="right")
    table.add_row(
        str(summary["ingested"]),
        str(summary["skipped"]),
        str(summary["errors"]),
        f"{summary['bytes'] / 1e6:.1f}",
        f"{summary['seconds']:.2f}",
        f"{summary['mb_per_s']:.1f}" if summary["ingested"] else "-",
    )
    return table


def _errors_table(report: Any) -> Any:
    from rich.table import Table

    table = Table(title="files that failed", show_lines=False)
    table.add_column("error", style="red")
    table.add_column("message", overflow="fold")
    for row in report.errors.itertuples(index=False):
        table.add_row(row.error, row.message)
    return table


def register(app: typer.Typer) -> None:
    """Add the ``ingest`` command to ``app``."""

    @app.command("ingest")
    def ingest_command(
        inputs: Annotated[
            list[str], typer.Argument(help="Files, folders (recursive) or glob patterns.")
        ],
        output: Annotated[Path, typer.Option("--output", "-o", help="Zarr store directory.")],
        pixel_size: Annotated[
            str | None,
            typer.Option(
                "--pixel-size",
                help="Pixel size in nm (one number, or Y,X) for every file; overrides the "
                "file's calibration, needed for png/jpg.",
            ),
        ] = None,
        scheduler: Annotated[
            str,
            typer.Option(
                help="threads | processes | synchronous | address of a Dask scheduler "
                "(tcp://host:8786)."
            ),
        ] = "threads",
        quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
    ) -> None:
        """Read microscope files with their pixel size and write them into a Zarr store.

        Files already in the store (same SHA-256) are skipped; a file that fails is listed
        with its error and the others are still ingested. Exit status 1 if any failed.
        """
        from rich.console import Console

        from antema_scale.io import ingest

        size = parse_pixel_size(pixel_size)
        client = None
        if scheduler not in _LOCAL_SCHEDULERS:
            from distributed import Client

            client = Client(scheduler)
        try:
            report = ingest(
                inputs,
                output,
                pixel_size_nm=size,
                client=client,
                scheduler=scheduler if client is None else None,
                progress=not quiet,
            )
        finally:
            if client is not None:
                client.close()
        console = Console()
        console.print(_summary_table(report))
        if not report.ok:
            console.print(_errors_table(report))
            raise typer.Exit(code=1)
