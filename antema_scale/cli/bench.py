"""``antema-scale bench``: throughput, scaling and accuracy of this machine, in one command."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Annotated

import typer


def parse_int_list(text: str, what: str) -> tuple[int, ...]:
    """``"1024,2048"`` -> ``(1024, 2048)``; a clear error for anything else.

    Raises
    ------
    typer.BadParameter
        An entry is not a positive integer, or the list is empty.
    """
    values = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        if not part.isdigit() or int(part) < 1:
            raise typer.BadParameter(
                f"{what} must be positive integers separated by commas, got {text!r}"
            )
        values.append(int(part))
    if not values:
        raise typer.BadParameter(f"give at least one value for {what}")
    return tuple(values)


def register(app: typer.Typer) -> None:
    """Add the ``bench`` command to ``app``."""

    @app.command("bench")
    def bench_command(
        quick: bool = typer.Option(
            False,
            "--quick",
            help="Small run (two 512² images, 2 workers, tiny accuracy set): under 2 min on 2 cores.",
        ),
        sizes: Annotated[
            str | None, typer.Option(help="Image sides in px, comma-separated (default 1024,2048).")
        ] = None,
        n: Annotated[int | None, typer.Option("--n", help="Images per size (default 4).")] = None,
        workers: Annotated[
            str | None,
            typer.Option(help="Worker counts for strong scaling, e.g. 1,2 (default 1,2)."),
        ] = None,
        accuracy: bool = typer.Option(
            True, "--accuracy/--no-accuracy", help="Run the accuracy benchmark."
        ),
        speed: bool = typer.Option(True, "--speed/--no-speed", help="Run the speed benchmark."),
        segmenter: str = typer.Option(
            "model", help="Segmenter of the speed runs: model | threshold."
        ),
        model: Annotated[
            Path | None, typer.Option(help="Model file (default: the shipped model).")
        ] = None,
        device: str = typer.Option("auto", help="auto | cpu | cuda | cuda:N | mps."),
        emps: Annotated[
            Path | None,
            typer.Option(help="EMPS folder (images/ + segmaps/) for held-out accuracy."),
        ] = None,
        emps_limit: Annotated[
            int | None, typer.Option(help="Held-out EMPS images used (default: all; --quick: 2).")
        ] = None,
        serial_threads: Annotated[
            str | None,
            typer.Option(
                help="Extra torch thread counts of the serial loop, e.g. 1 (all cores always run)."
            ),
        ] = None,
        synthetic_size: Annotated[
            int | None, typer.Option(help="Side of the synthetic accuracy images, px.")
        ] = None,
        synthetic_per_level: Annotated[
            int | None, typer.Option(help="Synthetic accuracy images per overlap level.")
        ] = None,
        separation_sizes: Annotated[
            str | None,
            typer.Option(help="Sizes timed against the full-frame reference (default: all)."),
        ] = None,
        output: Annotated[
            Path | None,
            typer.Option("-o", "--output", help="JSON result (markdown written beside it)."),
        ] = None,
        workdir: Annotated[
            Path | None,
            typer.Option(help="Scratch folder for the dataset and runs (default: temp)."),
        ] = None,
    ) -> None:
        """Benchmark speed (per stage, end to end, cold start, memory, scaling) and accuracy."""
        from rich.console import Console

        from antema_scale.benchmark import BenchConfig, run_benchmark, write_record

        console = Console()
        changes: dict[str, object] = {
            "accuracy": accuracy,
            "speed": speed,
            "segmenter": segmenter,
            "device": device,
        }
        if sizes is not None:
            changes["sizes"] = parse_int_list(sizes, "--sizes")
        if n is not None:
            changes["n_per_size"] = n
        if workers is not None:
            changes["workers"] = parse_int_list(workers, "--workers")
        if model is not None:
            if not model.is_file():
                raise typer.BadParameter(f"model file {str(model)!r} does not exist")
            changes["model_path"] = str(model)
        if emps is not None:
            changes["emps_dir"] = str(emps)
        if emps_limit is not None:
            changes["emps_limit"] = emps_limit
        if serial_threads is not None:
            changes["serial_threads"] = parse_int_list(serial_threads, "--serial-threads")
        if separation_sizes is not None:
            changes["separation_sizes"] = parse_int_list(separation_sizes, "--separation-sizes")
        if synthetic_size is not None:
            changes["synthetic_size"] = synthetic_size
        if synthetic_per_level is not None:
            changes["synthetic_per_level"] = synthetic_per_level
        if workdir is not None:
            workdir.mkdir(parents=True, exist_ok=True)
            changes["workdir"] = str(workdir)
        try:
            config = BenchConfig.quick(**changes) if quick else BenchConfig(**changes)  # type: ignore[arg-type]
        except (TypeError, ValueError) as error:
            raise typer.BadParameter(str(error)) from error
        target = output or Path("benchmarks/results") / f"{config.name}.json"
        config.name = target.stem
        command = shlex.join(["antema-scale", *sys.argv[1:]])
        with console.status("benchmarking") as status:
            record = run_benchmark(
                config,
                command=command,
                progress=lambda message: (console.log(message), status.update(message)),
                checkpoint=lambda partial: write_record(partial, target),
            )
        json_path, markdown_path = write_record(record, target)
        console.print(f"wrote {json_path} and {markdown_path} in {record['total_seconds']:.0f} s")
