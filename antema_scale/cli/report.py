"""``antema-scale report RESULTS -o report.html``: tables and an HTML report of a run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    """Add the ``report`` sub-command to ``app``."""

    @app.command("report")
    def report_command(
        results: Annotated[
            Path,
            typer.Argument(
                help="Results folder written by 'antema-scale analyze' (needs particles.parquet)."
            ),
        ],
        output: Annotated[
            Path | None,
            typer.Option(
                "--output", "-o", help="HTML report to write (default: RESULTS/report.html)."
            ),
        ] = None,
        samples: Annotated[
            Path | None,
            typer.Option(
                help="csv with columns image_id (or source) and sample; "
                "default: one sample per folder of the image files."
            ),
        ] = None,
        tables: Annotated[
            bool, typer.Option(help="Also write particles.csv and particles.xlsx.")
        ] = True,
        tables_dir: Annotated[
            Path | None,
            typer.Option(help="Folder for the csv/xlsx tables (default: next to the report)."),
        ] = None,
        max_images: Annotated[
            int, typer.Option(min=0, help="Per-image figures drawn at most.")
        ] = 12,
        bootstrap: Annotated[
            int, typer.Option(min=1, help="Bootstrap resamples for the confidence intervals.")
        ] = 2000,
        seed: Annotated[int, typer.Option(help="Seed of the bootstrap.")] = 0,
    ) -> None:
        """Write the particle tables (csv, xlsx) and a self-contained HTML report of a run."""
        from rich.console import Console

        from antema_scale.report import (
            ResultsDirectoryError,
            SampleMappingError,
            load_results,
            write_report,
            write_tables,
        )

        console = Console(stderr=True)
        out_html = output if output is not None else results / "report.html"
        try:
            with console.status("Reading results…") as status:
                run = load_results(results, image_loader=lambda image_id: None)
                if tables:
                    status.update("Writing tables…")
                    written = write_tables(
                        run.particles,
                        tables_dir if tables_dir is not None else out_html.parent,
                        formats=("csv", "xlsx"),
                        samples=samples,
                        images=run.images,
                        n_resamples=bootstrap,
                        seed=seed,
                    )
                    for path in written.values():
                        console.print(f"wrote {path}")
                status.update("Computing statistics and drawing figures…")
                path = write_report(
                    results,
                    out_html,
                    samples=samples,
                    max_image_figures=max_images,
                    n_resamples=bootstrap,
                    seed=seed,
                )
        except (ResultsDirectoryError, SampleMappingError) as error:
            console.print(f"[red]error:[/red] {error}")
            raise typer.Exit(code=2) from error
        console.print(f"wrote {path}")
