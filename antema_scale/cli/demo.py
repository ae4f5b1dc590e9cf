"""``antema-scale demo``: the whole pipeline on built-in sample data, offline, in under a minute.

Writes the synthetic sample of :func:`antema_scale.synth.write_demo_sample` into
``DIR/sample``, analyses it with the model shipped in the package on an embedded Dask
cluster (exactly what ``antema-scale analyze`` does), and writes into ``DIR/results`` the
tables a newcomer can open (Parquet, csv, xlsx) and an HTML report.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import typer

DEFAULT_DEMO_DIR = Path("antema-demo")


def shipped_model_available() -> bool:
    """Whether the default model file exists in the installed package."""
    from antema_scale.segment import default_model_path

    return Path(default_model_path()).is_file()


def run_demo(
    output: Path,
    *,
    segmenter: str = "model",
    workers: int | None = None,
    progress: bool = True,
    report: bool = True,
    console: Any = None,
) -> Any:
    """Write the demo sample under ``output/sample`` and analyse it into ``output/results``.

    Parameters
    ----------
    output : Path
        Demo folder.
    segmenter : {"model", "threshold"}
        ``"model"``: the shipped network (falls back to the threshold baseline, with a
        printed note, if the package has no model file).
    workers : int, optional
        Local worker processes (default: one per core).
    progress : bool
        Show progress bars.
    report : bool
        Write csv/xlsx tables and ``report.html``.
    console : rich.console.Console, optional
        Where to print.

    Returns
    -------
    antema_scale.pipeline.RunResult
    """
    from antema_scale.pipeline import ClusterSpec, SegmentationSettings, run_analysis
    from antema_scale.synth import write_demo_sample

    if segmenter == "model" and not shipped_model_available():
        if console is not None:
            console.print(
                "[yellow]No model file is shipped in this installation: using the threshold segmenter.[/yellow]"
            )
        segmenter = "threshold"
    sample_dir = output / "sample"
    write_demo_sample(sample_dir)
    results_dir = output / "results"
    result = run_analysis(
        sample_dir,
        results_dir,
        segmentation=SegmentationSettings(segmenter=segmenter),  # type: ignore[arg-type]
        cluster=ClusterSpec(workers=workers, dashboard_address=":0"),
        table_formats=() if report else ("csv",),
        progress=progress,
    )
    if report:
        from antema_scale.report import report_run

        written = report_run(results_dir, table_formats=("csv", "xlsx"))
        result.files.update({f"report_{name}": path for name, path in written.items()})
    return result


def register(app: typer.Typer) -> None:
    """Add the ``demo`` command to ``app``."""

    @app.command("demo")
    def demo_command(
        output: Annotated[
            Path, typer.Option("--output", "-o", help="Demo folder (sample and results).")
        ] = DEFAULT_DEMO_DIR,
        segmenter: Annotated[
            Literal["model", "threshold"],
            typer.Option(help="Shipped network or threshold baseline."),
        ] = "model",
        workers: Annotated[
            int | None, typer.Option(min=1, help="Local worker processes (default: one per core).")
        ] = None,
        quiet: Annotated[bool, typer.Option("--quiet", help="No progress bars.")] = False,
    ) -> None:
        """Analyse the built-in synthetic sample with the built-in model, offline.

        Writes DIR/sample (micrographs) and DIR/results (particles.parquet/.csv/.xlsx,
        images.parquet, errors.csv, manifest.json, report.html).
        """
        from rich.console import Console

        from antema_scale.cli.analyze import print_run

        console = Console()
        result = run_demo(
            output, segmenter=segmenter, workers=workers, progress=not quiet, console=console
        )
        print_run(result, console)
        report = result.files.get("report_html")
        if report is not None:
            console.print(f"Open the report: {report}", markup=False)
        if not result.ok:
            raise typer.Exit(1)
