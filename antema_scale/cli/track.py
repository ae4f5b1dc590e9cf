"""``antema-scale track RESULTS``: particle tracking and time series of analysed movies."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from rich.console import Console

    from antema_scale.insitu import TrackingResult


def register(app: typer.Typer) -> None:
    """Add the ``track`` sub-command to ``app``."""

    @app.command("track")
    def track_command(
        results: Annotated[
            Path,
            typer.Argument(
                help="Results folder written by 'antema-scale analyze' on a movie "
                "(particles.parquet with frame/time_s)."
            ),
        ],
        output: Annotated[
            Path | None,
            typer.Option(
                "--output",
                "-o",
                help="Folder for the tracking outputs (default: RESULTS/tracking).",
            ),
        ] = None,
        search_range: Annotated[
            float | None,
            typer.Option(
                "--search-range",
                min=0.0,
                help="Largest motion of a particle between frames, nm, after drift correction "
                "(default: min(median diameter, 0.4 x median nearest-neighbour distance)).",
            ),
        ] = None,
        memory: Annotated[
            int,
            typer.Option(
                "--memory", min=0, help="Frames a particle may be missed and keep its track."
            ),
        ] = 0,
        frame_interval: Annotated[
            float | None,
            typer.Option(
                "--frame-interval",
                min=0.0,
                help="Seconds between frames, for files without frame times.",
            ),
        ] = None,
        drift: Annotated[
            bool,
            typer.Option(
                "--drift-correction/--no-drift-correction",
                help="Estimate and remove stage drift before linking.",
            ),
        ] = True,
        max_drift: Annotated[
            float | None,
            typer.Option(
                "--max-drift",
                min=0.0,
                help="Largest stage drift per frame, nm, when larger than the search range "
                "(the drift-measuring first pass searches this far).",
            ),
        ] = None,
        drift_from_frames: Annotated[
            bool,
            typer.Option(
                "--drift-from-frames",
                help="Measure the drift by registering the movie frames (from the run's store) "
                "instead of from a first linking pass; for drift larger than the particle spacing.",
            ),
        ] = False,
        area_tolerance: Annotated[
            float,
            typer.Option(
                "--area-tolerance",
                min=0.0,
                max=1.0,
                help="Relative area tolerance of the coalescence test.",
            ),
        ] = 0.25,
        figures: Annotated[
            bool, typer.Option("--figures/--no-figures", help="Draw time-series figures.")
        ] = True,
        overlay_frames: Annotated[
            int,
            typer.Option(
                "--overlay-frames",
                min=0,
                help="Frames in the animated overlay GIF per movie (0: none).",
            ),
        ] = 60,
    ) -> None:
        """Track the particles of analysed movies: tracks, events, summaries, growth, figures."""
        from rich.console import Console

        from antema_scale.insitu import MovieTableError, TrackingInputError, track_results

        console = Console(stderr=True)
        try:
            with console.status("Tracking particles…"):
                result = track_results(
                    results,
                    output,
                    figures=figures,
                    drift_from_frames=drift_from_frames,
                    overlay_frames=overlay_frames,
                    search_range_nm=search_range,
                    memory=memory,
                    frame_interval_s=frame_interval,
                    correct_drift=drift,
                    max_drift_nm=max_drift,
                    area_tolerance=area_tolerance,
                )
        except (TrackingInputError, MovieTableError, ValueError) as error:
            console.print(f"[red]error:[/red] {error}")
            raise typer.Exit(code=2) from error
        print_tracking_summary(console, result)


def print_tracking_summary(console: Console, result: TrackingResult) -> None:
    """Print the counts, notes and files of a tracking run."""
    tracks = result.tracks
    counts = result.events["event"].value_counts() if len(result.events) else {}
    kinds = ("appearance", "disappearance", "coalescence", "split")
    console.print(
        f"{tracks['track_id'].nunique()} tracks over {tracks['frame'].nunique()} frames "
        f"(search range {result.search_range_nm:.3g} nm); events: "
        + ", ".join(f"{counts.get(kind, 0)} {kind}" for kind in kinds)
    )
    for note in result.notes:
        console.print(f"[yellow]note:[/yellow] {note}")
    for path in result.files.values():
        console.print(f"wrote {path}")


def track_after_analyze(output: Path, console: Console) -> None:
    """Track the movies of a finished ``analyze`` run (no-op when it holds no movie).

    Tracking problems are printed, never raised: the analysis itself succeeded.
    """
    from antema_scale.insitu import MovieTableError, TrackingInputError, track_results

    particles_path = output / "particles.parquet"
    if not particles_path.is_file():
        return
    import pyarrow.parquet as pq

    if "frame" not in pq.read_schema(particles_path).names:
        return
    try:
        with console.status("Tracking particles across movie frames…"):
            result = track_results(output)
    except TrackingInputError:
        return  # frame column present but no movie rows
    except (MovieTableError, ValueError) as error:
        console.print(f"[yellow]tracking skipped:[/yellow] {error}")
        return
    print_tracking_summary(console, result)
