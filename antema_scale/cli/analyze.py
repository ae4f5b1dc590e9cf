"""``antema-scale analyze``: micrographs in, particle tables out, on a local or remote Dask cluster.

The particle-analysis options are generated from the fields of
:class:`antema_scale.particles.AnalysisOptions` (names, types, defaults and help text), so
the command never drifts from the library.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from antema_scale.cli.ingest import parse_pixel_size

#: Exit status when the run finished but some inputs failed.
EXIT_SOME_FAILED = 1

_ANALYSIS_PANEL = "Particle analysis (sizes in nm)"
_SEGMENTATION_PANEL = "Segmentation"
_CLUSTER_PANEL = "Cluster"
_OUTPUT_PANEL = "Run and output"


def _attribute_help(docstring: str) -> dict[str, str]:
    """``name -> description`` from the numpydoc ``Attributes`` section of ``docstring``."""
    helps: dict[str, str] = {}
    current: str | None = None
    for line in inspect.cleandoc(docstring).splitlines():
        header = re.match(r"^(\w+) : ", line)
        if header:
            current = header.group(1)
            helps[current] = ""
        elif current and line.startswith("    "):
            helps[current] = f"{helps[current]} {line.strip()}".strip()
        elif line.strip() and not line.startswith(" "):
            current = None
    return helps


def analysis_option_parameters() -> list[inspect.Parameter]:
    """One keyword-only typer option per field of ``AnalysisOptions``, with its default and help."""
    from antema_scale.particles import AnalysisOptions

    hints = typing.get_type_hints(AnalysisOptions)
    helps = _attribute_help(AnalysisOptions.__doc__ or "")
    parameters = []
    for field in dataclasses.fields(AnalysisOptions):
        annotation = hints[field.name]
        flag = "--" + field.name.replace("_", "-")
        names = [f"{flag}/--no-{flag[2:]}"] if annotation is bool else [flag]
        option = typer.Option(
            *names,
            help=helps.get(field.name, ""),
            rich_help_panel=_ANALYSIS_PANEL,
            show_default=True,
        )
        parameters.append(
            inspect.Parameter(
                field.name,
                inspect.Parameter.KEYWORD_ONLY,
                default=field.default,
                annotation=Annotated[annotation, option],
            )
        )
    return parameters


def with_analysis_options(command: Callable[..., None]) -> Callable[..., None]:
    """Extend ``command``'s signature with the analysis options; they arrive as ``analysis_fields``."""
    names = [field.name for field in dataclasses.fields(_analysis_options_class())]
    signature = inspect.signature(command, eval_str=True)
    own = [p for p in signature.parameters.values() if p.name != "analysis_fields"]

    def wrapper(**kwargs: Any) -> None:
        fields = {name: kwargs.pop(name) for name in names}
        command(analysis_fields=fields, **kwargs)

    wrapper.__signature__ = signature.replace(parameters=[*own, *analysis_option_parameters()])  # type: ignore[attr-defined]
    wrapper.__annotations__ = {
        p.name: p.annotation for p in wrapper.__signature__.parameters.values()
    }  # type: ignore[attr-defined]
    wrapper.__doc__ = command.__doc__
    wrapper.__name__ = command.__name__
    return wrapper


def _analysis_options_class() -> type:
    from antema_scale.particles import AnalysisOptions

    return AnalysisOptions


def run_summary_table(result: Any) -> Any:
    """A rich table of one run: images analysed/reused/failed, particles, mean diameter."""
    from rich.table import Table

    particles = result.particles
    table = Table(title=f"antema-scale results in {result.output_dir}")
    for name in ("images", "analysed", "reused", "failed", "particles", "equivalent diameter (nm)"):
        table.add_column(name, justify="right")
    diameters = particles["equivalent_diameter_nm"] if "equivalent_diameter_nm" in particles else []
    diameter = (
        f"{diameters.mean():.2f} ± {diameters.std(ddof=1):.2f}" if len(diameters) > 1 else "-"
    )
    table.add_row(
        str(len(result.images) + len(result.errors)),
        str(len(result.analysed)),
        str(len(result.reused)),
        str(len(result.errors)),
        str(len(particles)),
        diameter,
    )
    return table


def errors_table(errors: Any, limit: int = 20) -> Any:
    """A rich table of the first ``limit`` failed inputs."""
    from rich.table import Table

    table = Table(title=f"inputs that failed ({len(errors)})")
    table.add_column("source", overflow="fold")
    table.add_column("stage")
    table.add_column("error", style="red")
    table.add_column("message", overflow="fold")
    for row in errors.head(limit).itertuples(index=False):
        table.add_row(str(row.source), str(row.stage), str(row.error_type), str(row.message))
    return table


def print_run(result: Any, console: Any) -> None:
    """Print the summary, the failures and where the files are."""
    console.print(run_summary_table(result))
    if result.images.empty and result.errors.empty:
        console.print(
            f"No micrograph file found in the inputs ({len(result.skipped)} other files skipped).",
            style="yellow",
            markup=False,
        )
    if len(result.errors):
        console.print(errors_table(result.errors))
    for name, path in result.files.items():
        console.print(f"  {name:<16} {path}", markup=False)


def print_cluster(description: dict[str, Any], console: Any) -> None:
    """Print where the run executes and the dashboard link."""
    import importlib.util

    link = description.get("dashboard") or "-"
    if importlib.util.find_spec("bokeh") is None:
        link += " (install bokeh to serve the dashboard)"
    console.print(
        f"Dask scheduler {description.get('scheduler')}: {description.get('workers')} workers, "
        f"{description.get('threads')} threads, {description.get('gpu_workers')} with a GPU; dashboard {link}",
        markup=False,
    )


def register(app: typer.Typer) -> None:
    """Add the ``analyze`` command to ``app``."""

    def analyze_command(
        inputs: Annotated[
            list[str],
            typer.Argument(
                help="Micrograph files, folders, glob patterns, or an ingested Zarr store."
            ),
        ],
        output: Annotated[
            Path,
            typer.Option(
                "--output",
                "-o",
                help="Run folder (re-running into it resumes).",
                rich_help_panel=_OUTPUT_PANEL,
            ),
        ],
        segmenter: Annotated[
            Literal["model", "threshold"],
            typer.Option(
                help="DeepLabV3+ network or the classical threshold baseline.",
                rich_help_panel=_SEGMENTATION_PANEL,
            ),
        ] = "model",
        model: Annotated[
            Path | None,
            typer.Option(
                "--model",
                help="Model file (default: the model shipped with the package).",
                rich_help_panel=_SEGMENTATION_PANEL,
            ),
        ] = None,
        device: Annotated[
            str,
            typer.Option(
                help="auto | cpu | cuda | cuda:N | mps.", rich_help_panel=_SEGMENTATION_PANEL
            ),
        ] = "auto",
        batch_size: Annotated[
            int,
            typer.Option(
                min=1,
                help="Tiles per forward pass of the network.",
                rich_help_panel=_SEGMENTATION_PANEL,
            ),
        ] = 8,
        images_per_task: Annotated[
            int,
            typer.Option(
                min=1,
                help="Images segmented together by one task (batching on GPUs).",
                rich_help_panel=_SEGMENTATION_PANEL,
            ),
        ] = 1,
        frames_per_task: Annotated[
            int,
            typer.Option(
                min=1,
                help="Movies with more frames are split into chunks of this many frames per task.",
                rich_help_panel=_SEGMENTATION_PANEL,
            ),
        ] = 16,
        scale_adaptation: Annotated[
            bool,
            typer.Option(
                help="Network: segment images of small particles (first-pass median < 24 working px) again on a grid up to 2x finer.",
                rich_help_panel=_SEGMENTATION_PANEL,
            ),
        ] = True,
        flips: Annotated[
            int,
            typer.Option(
                help="Network: views averaged per tile, 8 | 4 | 2 | 1: 8 = every mirror and 90-degree turn (most accurate), 4 = mirrors only (~1.5x faster), 1 = the network alone (~5x faster than 8).",
                rich_help_panel=_SEGMENTATION_PANEL,
            ),
        ] = 8,
        precision: Annotated[
            str,
            typer.Option(
                help="Network: number type, auto | fp32 | bf16 | fp16. auto = bf16/fp16 on a GPU, fp32 on the CPU; bf16 takes ~0.75x the time on CPUs with native bfloat16 (AVX512-BF16/AMX) at the same validation accuracy.",
                rich_help_panel=_SEGMENTATION_PANEL,
            ),
        ] = "auto",
        pixel_size: Annotated[
            str | None,
            typer.Option(
                "--pixel-size",
                help="Pixel size in nm (one number, or Y,X) for files without one (png/jpg).",
                rich_help_panel=_SEGMENTATION_PANEL,
            ),
        ] = None,
        scheduler: Annotated[
            str | None,
            typer.Option(
                help="Address of a running Dask scheduler, e.g. tcp://host:8786.",
                rich_help_panel=_CLUSTER_PANEL,
            ),
        ] = None,
        scheduler_file: Annotated[
            Path | None,
            typer.Option(
                help="Scheduler file written by 'dask scheduler --scheduler-file'.",
                rich_help_panel=_CLUSTER_PANEL,
            ),
        ] = None,
        cluster: Annotated[
            Literal["local", "slurm", "pbs", "lsf", "sge", "kubernetes"],
            typer.Option(
                help="Start a cluster: local, a batch queue (needs antema-scale[hpc]) or Kubernetes (needs antema-scale[k8s]).",
                rich_help_panel=_CLUSTER_PANEL,
            ),
        ] = "local",
        workers: Annotated[
            int | None,
            typer.Option(
                min=1,
                help="Worker processes / jobs / pods (default: one per core, one per GPU).",
                rich_help_panel=_CLUSTER_PANEL,
            ),
        ] = None,
        threads_per_worker: Annotated[
            int | None,
            typer.Option(min=1, help="Threads per worker.", rich_help_panel=_CLUSTER_PANEL),
        ] = None,
        memory_limit: Annotated[
            str | None,
            typer.Option(help="Memory per worker, e.g. 4GiB.", rich_help_panel=_CLUSTER_PANEL),
        ] = None,
        worker_profile: Annotated[
            bool,
            typer.Option(
                help="Local cluster: Dask's profiler in the workers (dashboard profile view; ~250-300 MiB per worker on long runs).",
                rich_help_panel=_CLUSTER_PANEL,
            ),
        ] = True,
        queue: Annotated[
            str | None,
            typer.Option(
                help="Batch queue / partition (--cluster slurm|pbs|lsf|sge).",
                rich_help_panel=_CLUSTER_PANEL,
            ),
        ] = None,
        walltime: Annotated[
            str | None,
            typer.Option(
                help="Batch job wall time, e.g. 02:00:00.", rich_help_panel=_CLUSTER_PANEL
            ),
        ] = None,
        worker_timeout: Annotated[
            float | None,
            typer.Option(
                min=0,
                help="Seconds to wait for the first worker of an existing, batch or Kubernetes cluster; raise it for long batch queues.",
                rich_help_panel=_CLUSTER_PANEL,
            ),
        ] = 300.0,
        fail_fast: Annotated[
            bool,
            typer.Option(
                "--fail-fast",
                help="Stop at the first image that fails.",
                rich_help_panel=_OUTPUT_PANEL,
            ),
        ] = False,
        retries: Annotated[
            int,
            typer.Option(
                min=0,
                help="Retries of a task that failed for a transient reason.",
                rich_help_panel=_OUTPUT_PANEL,
            ),
        ] = 2,
        csv: Annotated[
            bool,
            typer.Option("--csv", help="Also write particles.csv.", rich_help_panel=_OUTPUT_PANEL),
        ] = False,
        xlsx: Annotated[
            bool,
            typer.Option(
                "--xlsx",
                help="Also write particles.xlsx (with the MeanValues sheet).",
                rich_help_panel=_OUTPUT_PANEL,
            ),
        ] = False,
        report: Annotated[
            bool,
            typer.Option(
                "--report",
                help="Also write report.html (figures, statistics, errors, manifest).",
                rich_help_panel=_OUTPUT_PANEL,
            ),
        ] = False,
        quiet: Annotated[
            bool, typer.Option("--quiet", help="No progress bars.", rich_help_panel=_OUTPUT_PANEL)
        ] = False,
        track: Annotated[
            bool,
            typer.Option(
                "--track/--no-track",
                help="Movies (files with a frame axis): track particles across frames into OUTPUT/tracking/ (see 'antema-scale track').",
                rich_help_panel=_OUTPUT_PANEL,
            ),
        ] = True,
        analysis_fields: dict[str, Any] | None = None,
    ) -> None:
        """Measure every particle in many micrographs with a Dask cluster.

        Ingests the inputs into OUTPUT/store.zarr, segments them (one model per worker),
        writes masks back into the store, separates and measures particles in nm, and
        writes particles.parquet, images.parquet, errors.parquet/.csv and manifest.json.
        Movies (files with a frame axis) are analysed frame by frame and then tracked
        (OUTPUT/tracking/, see 'antema-scale track'). Re-running into the same OUTPUT skips images already analysed with the same
        parameters and model. Exit status 1 if any input failed.
        """
        from rich.console import Console

        from antema_scale.particles import AnalysisOptions
        from antema_scale.pipeline import (
            ClusterBackendMissingError,
            ClusterConfigError,
            ClusterSpec,
            NoWorkersError,
            PipelineOptionError,
            SegmentationSettings,
            run_analysis,
        )
        from antema_scale.segment import ModelFileError

        console = Console()
        try:
            options = AnalysisOptions(**(analysis_fields or {}))
            segmentation = SegmentationSettings(
                segmenter=segmenter,
                model_path=str(model) if model else None,
                device=device,
                batch_size=batch_size,
                images_per_task=images_per_task,
                frames_per_task=frames_per_task,
                scale_adaptation=scale_adaptation,
                flips=flips,
                precision=precision,
            )
            spec = ClusterSpec(
                cluster=cluster,
                scheduler=scheduler,
                scheduler_file=str(scheduler_file) if scheduler_file else None,
                workers=workers,
                threads_per_worker=threads_per_worker,
                memory_limit=memory_limit,
                worker_profile=worker_profile,
                queue=queue,
                walltime=walltime,
                worker_timeout_s=worker_timeout,
            )
        except (ValueError, PipelineOptionError, ClusterConfigError) as error:
            raise typer.BadParameter(str(error)) from error
        formats = [name for name, wanted in (("csv", csv), ("xlsx", xlsx)) if wanted and not report]
        try:
            result = run_analysis(
                inputs,
                output,
                segmentation=segmentation,
                analysis_options=options,
                cluster=spec,
                pixel_size_nm=parse_pixel_size(pixel_size),
                fail_fast=fail_fast,
                retries=retries,
                table_formats=formats,
                progress=not quiet,
                on_cluster=lambda description: print_cluster(description, console),
            )
        except ClusterBackendMissingError as error:
            console.print(str(error), style="red", markup=False)
            raise typer.Exit(2) from error
        except NoWorkersError as error:
            console.print(str(error), style="red", markup=False)
            raise typer.Exit(2) from error
        except ModelFileError as error:
            console.print(f"cannot load the segmentation model: {error}", style="red", markup=False)
            raise typer.Exit(2) from error
        from antema_scale.cli.track import track_after_analyze

        track_after_analyze(output, console)
        if report:
            from antema_scale.report import report_run

            tables = [name for name, wanted in (("csv", csv), ("xlsx", xlsx)) if wanted]
            written = report_run(output, table_formats=tables)
            result.files.update({f"report_{name}": path for name, path in written.items()})
        print_run(result, console)
        if track:
            from antema_scale.cli.track import track_after_analyze

            track_after_analyze(Path(output), console)
        if not result.ok:
            raise typer.Exit(EXIT_SOME_FAILED)

    app.command("analyze")(with_analysis_options(analyze_command))
