"""``antema-scale evaluate``: metrics of a segmenter on held-out labelled images."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from antema_scale.cli.train import parse_folder_spec


def register(app: typer.Typer) -> None:
    """Add the ``evaluate`` command to ``app``."""

    @app.command("evaluate")
    def evaluate_command(
        model: Annotated[
            Path | None, typer.Option(help="Model file (default: the shipped model).")
        ] = None,
        segmenter: str = typer.Option("network", help="network | threshold"),
        threshold_method: str = typer.Option("otsu", help="otsu | local (threshold segmenter)."),
        folder: Annotated[
            list[str] | None,
            typer.Option("--folder", help="IMAGES_DIR:MASKS_DIR[:PIXEL_SIZE_NM]; repeatable."),
        ] = None,
        emps: Annotated[Path | None, typer.Option(help="EMPS folder (images/ + segmaps/).")] = None,
        synthetic: int = typer.Option(
            0, help="Synthetic images in the whole 60/20/20 split (as given to train)."
        ),
        synthetic_size: int = typer.Option(512, help="Side of synthetic micrographs, px."),
        split: str = typer.Option("test", help="train | val | test"),
        split_seed: int = typer.Option(0, help="Seed of the 60/20/20 split (as in train)."),
        batch_size: int = typer.Option(4, help="Tiles per forward pass."),
        tile: int = typer.Option(512, help="Largest tile side in working pixels (network)."),
        overlap: int = typer.Option(64, help="Minimum tile overlap in pixels (network)."),
        refine_to_px: float | None = typer.Option(
            None,
            help="Scale adaptation (network): images whose first-pass median particle "
            "diameter is below this many working px are segmented again on a finer grid "
            "(default: the package's, 0 = off).",
        ),
        max_refine_zoom: float | None = typer.Option(
            None, help="Largest zoom of that second pass (default: the package's)."
        ),
        flips: int = typer.Option(
            8, help="Views averaged per tile (network): 8 | 4 | 2 | 1 (see analyze --help)."
        ),
        precision: str = typer.Option(
            "auto", help="Number type (network): auto | fp32 | bf16 | fp16 (see analyze --help)."
        ),
        device: str = typer.Option("auto", help="auto|cpu|cuda|mps"),
        threads: int = typer.Option(2, help="torch CPU threads."),
        output: Annotated[
            Path,
            typer.Option(
                help="Folder for metrics.json, metrics.md, per_image.csv, diameters.csv "
                "and the figures confusion_matrix and diameters (.png, .svg)."
            ),
        ] = Path("runs/evaluate"),
        export: Annotated[
            Path | None,
            typer.Option(help="Also write the model, fp16, with these test metrics, here."),
        ] = None,
    ) -> None:
        """Evaluate a segmenter: accuracy, IoU/Dice, confusion matrix, instances, diameters."""
        import torch
        from rich.console import Console
        from rich.progress import Progress
        from rich.table import Table

        from antema_scale.report.evaluation import METRIC_ROWS, format_metric
        from antema_scale.segment.datasets import EMPS_NOMINAL_PIXEL_SIZE_NM
        from antema_scale.segment.evaluate import (
            evaluate,
            network_segmenter,
            threshold_segmenter,
        )
        from antema_scale.segment.model_file import export_model, load_model
        from antema_scale.segment.train import TrainConfig, iter_split, split_size

        console = Console()
        torch.set_num_threads(threads)
        folders = [parse_folder_spec(s, EMPS_NOMINAL_PIXEL_SIZE_NM) for s in folder or []]
        if emps is not None:
            folders.append(
                parse_folder_spec(f"{emps}/images:{emps}/segmaps", EMPS_NOMINAL_PIXEL_SIZE_NM)
            )
        if not folders and synthetic <= 0:
            raise typer.BadParameter("give --folder, --emps and/or --synthetic N")
        if segmenter not in ("network", "threshold"):
            raise typer.BadParameter(f"--segmenter must be network or threshold, not {segmenter!r}")
        if export is not None and segmenter != "network":
            raise typer.BadParameter("--export needs --segmenter network")
        command = shlex.join(["antema-scale", *sys.argv[1:]])
        settings: dict[str, Any] = {"segmenter": segmenter, "split": split, "command": command}
        pixel_range = (0.125, 0.5)
        if segmenter == "network":
            loaded = load_model(model, device=device)
            pixel_range = tuple(loaded.preprocessing.pixel_size_range_nm)
            settings["model"] = str(model) if model else "shipped default"
            settings["model_sha256"] = loaded.metadata.get("weights_sha256")
            from antema_scale.segment.inference import SCALE_ADAPTATION
            from antema_scale.segment.precision import PRECISIONS

            target = (
                SCALE_ADAPTATION["target_diameter_px"] if refine_to_px is None else refine_to_px
            )
            max_zoom = (
                SCALE_ADAPTATION["max_refine_zoom"] if max_refine_zoom is None else max_refine_zoom
            )
            if target < 0 or max_zoom < 1:
                raise typer.BadParameter("need --refine-to-px >= 0 and --max-refine-zoom >= 1")
            if flips not in (1, 2, 4, 8):
                raise typer.BadParameter(f"--flips must be 1, 2, 4 or 8, got {flips}")
            if precision not in PRECISIONS:
                raise typer.BadParameter(
                    f"--precision must be one of {', '.join(PRECISIONS)}, got {precision!r}"
                )
            segment = network_segmenter(
                loaded,
                batch_size=batch_size,
                tile=tile,
                overlap=overlap,
                target_diameter_px=target if target > 0 else None,
                max_refine_zoom=max_zoom,
                flips=flips,
                precision=precision,
            )
            inference = {
                "refine_to_px": target,
                "max_refine_zoom": max_zoom,
                "flips": flips,
                "precision": precision,
            }
            settings.update(tile=tile, overlap=overlap, **inference)
        else:
            settings["threshold_method"] = threshold_method
            segment = threshold_segmenter(threshold_method)
        config = TrainConfig(
            folders=folders,
            synthetic_images=synthetic,
            synthetic_shape=(synthetic_size, synthetic_size),
            split_seed=split_seed,
            pixel_size_range_nm=pixel_range,  # type: ignore[arg-type]
        )
        total = split_size(config, split)
        with Progress(console=console, transient=True) as bar:
            task = bar.add_task(f"evaluating {total} images", total=total)
            result = evaluate(
                segment,
                iter_split(config, split),  # read/generated as the evaluation goes
                progress=lambda n: bar.update(task, completed=n),
                settings=settings,
            )
        written = result.write(output)
        table = Table(title=f"{segmenter} on the {split} split")
        table.add_column("metric")
        sources = list(result.summary)
        for source in sources:
            table.add_column(source, justify="right")
        for title, key in METRIC_ROWS:
            table.add_row(title, *(format_metric(result.summary[s].get(key)) for s in sources))
        console.print(table)
        for source in sources:
            cm = result.summary[source]["confusion_matrix"]
            console.print(f"confusion matrix {source} [[TN, FP], [FN, TP]] (pixels): {cm}")
        console.print("wrote " + ", ".join(str(p) for p in written))
        if export is not None:
            meta = export_model(
                model if model is not None else _default(),
                export,
                extra_metadata={
                    "test_metrics": result.summary,
                    "evaluation_command": command,
                },
            )
            console.print(f"exported {export} (fp16, sha256 {meta['weights_sha256'][:12]}...)")


def _default() -> Path:
    from antema_scale.segment.model_file import default_model_path

    return default_model_path()
