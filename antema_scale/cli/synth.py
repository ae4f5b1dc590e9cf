"""``antema-scale synth -o DIR --n N``: synthetic micrographs (or movies) with exact truth."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    """Add the ``synth`` sub-command to ``app``."""

    @app.command("synth")
    def synth_command(
        output: Annotated[
            Path,
            typer.Option(
                "--output", "-o", help="Output folder (images/, masks/, truth/, truth.csv)."
            ),
        ],
        n: Annotated[
            int, typer.Option("--n", min=1, help="Number of images (or movies with --movie).")
        ] = 8,
        mode: Annotated[
            str, typer.Option(help="Imaging mode: hrtem, haadf or mixed (alternating).")
        ] = "mixed",
        size: Annotated[int, typer.Option(min=8, max=16384, help="Image side, px.")] = 512,
        pixel_size: Annotated[
            float | None,
            typer.Option(
                "--pixel-size", min=1e-4, help="Pixel size, nm/px (default: varied per image)."
            ),
        ] = None,
        diameter: Annotated[
            float | None,
            typer.Option(
                min=1e-3,
                help="Mean particle diameter, nm (default: varied, or 20 px with --pixel-size).",
            ),
        ] = None,
        spread: Annotated[
            float, typer.Option(min=0.0, help="Relative spread of diameters (with --pixel-size).")
        ] = 0.15,
        shapes: Annotated[
            str, typer.Option(help="Shape mix with --pixel-size, e.g. 'sphere:1,cube:0.5'.")
        ] = "sphere:1",
        area_fraction: Annotated[
            float, typer.Option(min=0.0, max=0.9, help="Covered fraction (with --pixel-size).")
        ] = 0.15,
        overlap: Annotated[
            str | None,
            typer.Option(
                help="Overlap level: none, low, medium, high (default: varied, or low with --pixel-size)."
            ),
        ] = None,
        dose: Annotated[
            float, typer.Option(min=1e-3, help="Electrons (counts) per pixel, with --pixel-size.")
        ] = 300.0,
        seed: Annotated[int, typer.Option(help="Base seed; image i uses seed + i.")] = 0,
        formats: Annotated[
            str, typer.Option(help="Comma-separated image formats: h5, tif, zarr.")
        ] = "h5",
        movie: Annotated[
            bool, typer.Option("--movie", help="Write in-situ movies instead of images.")
        ] = False,
        frames: Annotated[int, typer.Option(min=1, help="Frames per movie.")] = 20,
        quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
    ) -> None:
        """Generate synthetic micrographs with exact truth (masks, per-particle crops, tables).

        Without --pixel-size every image gets a varied realistic configuration (mode,
        pixel size 0.01-2 nm/px, sizes, shapes, overlap, dose); with it, one fixed
        configuration built from the options. Files: DIR/images/*.h5|.tif (pixel size in
        nm inside), DIR/masks/*.png, DIR/truth/*_truth.csv and *_particles.npz,
        DIR/truth.csv, DIR/images.csv, DIR/manifest.json.
        """
        import numpy as np
        from rich.console import Console
        from rich.progress import Progress

        from antema_scale.synth import (
            SynthConfig,
            generate_movie,
            random_config,
            write_dataset,
            write_movie,
        )

        console = Console()
        if mode not in ("hrtem", "haadf", "mixed"):
            raise typer.BadParameter(
                f"must be hrtem, haadf or mixed, not {mode!r}", param_hint="--mode"
            )
        if overlap is not None and overlap not in ("none", "low", "medium", "high"):
            raise typer.BadParameter(
                f"must be none, low, medium or high, not {overlap!r}", param_hint="--overlap"
            )
        image_formats = tuple(f.strip() for f in formats.split(",") if f.strip())
        try:
            config = None
            if pixel_size is not None:
                config = SynthConfig(
                    mode="hrtem" if mode == "mixed" else mode,
                    image_size=size,
                    pixel_size_nm=pixel_size,
                    diameter_mean_nm=diameter if diameter is not None else 20.0 * pixel_size,
                    diameter_spread=spread,
                    shapes=_parse_shapes(shapes),
                    area_fraction=area_fraction,
                    overlap=overlap or "low",
                    dose=dose,
                )
            elif diameter is not None:
                raise typer.BadParameter("--diameter needs --pixel-size", param_hint="--diameter")
            with Progress(console=console, disable=quiet, transient=True) as progress:
                task = progress.add_task("movies" if movie else "images", total=n)
                if movie:
                    for i in range(n):
                        movie_mode = ("hrtem", "haadf")[i % 2] if mode == "mixed" else mode
                        movie_config = (
                            config.with_(mode=movie_mode)
                            if config is not None
                            else random_config(
                                np.random.default_rng([seed, i]),
                                mode=movie_mode,
                                image_size=size,
                                overlap=overlap,
                            )
                        )
                        written = write_movie(
                            generate_movie(movie_config, frames, seed + i),
                            output,
                            f"movie_{movie_mode}_{seed + i:06d}",
                            formats=image_formats,
                        )
                        progress.update(task, completed=i + 1)
                    console.print(
                        f"Wrote {n} movies of {frames} frames to {output} (last: {written['tracks'].name})"
                    )
                    return
                index = write_dataset(
                    output,
                    n,
                    config=config,
                    seed=seed,
                    mode=mode,
                    image_size=size,
                    overlap=overlap,
                    formats=image_formats,
                    progress=lambda k: progress.update(task, completed=k),
                )
        except ValueError as error:
            console.print(f"[red]synth: {error}[/red]")
            raise typer.Exit(2) from error
        console.print(
            f"Wrote {len(index)} images ({int(index['n_particles'].sum())} particles, "
            f"{int(index['n_overlapping'].sum())} overlapping) to {output}"
        )


def _parse_shapes(text: str) -> dict[str, float]:
    """'sphere:1,cube:0.5' -> {'sphere': 1.0, 'cube': 0.5} (weight 1 when omitted)."""
    mix: dict[str, float] = {}
    for item in text.split(","):
        if not item.strip():
            continue
        name, _, weight = item.partition(":")
        try:
            mix[name.strip()] = float(weight) if weight else 1.0
        except ValueError as error:
            raise ValueError(
                f"bad shape weight in {item!r}; use e.g. 'sphere:1,cube:0.5'"
            ) from error
    return mix
