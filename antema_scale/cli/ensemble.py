"""``antema-scale ensemble``: combine trained model files into one ensemble model file."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    """Add the ``ensemble`` command to ``app``."""

    @app.command("ensemble")
    def ensemble_command(
        models: Annotated[
            list[str],
            typer.Argument(
                help="Two or more model files ('default' = the shipped model); their "
                "networks are averaged.",
                show_default=False,
            ),
        ],
        output: Annotated[
            Path, typer.Option("--output", "-o", help="The ensemble model file to write.")
        ],
        fp32: bool = typer.Option(False, help="Keep float32 weights (default: float16)."),
    ) -> None:
        """Combine model files into one ensemble that predicts the mean of their logits.

        For networks trained apart (other seeds or data) with the same working
        pixel-size range. The mean of comparably good members can beat each of them; a
        weaker member drags it down, so check with `antema-scale evaluate --model`. It
        takes the time of one network per member (lower --flips to keep the time). The
        members' training commands and data are kept in the new file's metadata.
        """
        from rich.console import Console

        from antema_scale.segment.model_file import (
            ModelFileError,
            combine_models,
            default_model_path,
        )

        console = Console(stderr=True)
        if len(models) < 2:
            raise typer.BadParameter(f"need at least two model files, got {len(models)}")
        sources: list[str | Path] = [default_model_path() if m == "default" else m for m in models]
        try:
            meta = combine_models(
                sources,
                output,
                half=not fp32,
                extra_metadata={"ensemble_command": shlex.join(["antema-scale", *sys.argv[1:]])},
            )
        except (ModelFileError, ValueError) as exc:
            console.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(code=1) from exc
        console.print(
            f"wrote {output}: ensemble of {len(meta['members'])} networks "
            f"(sha256 {meta['weights_sha256'][:12]}...)"
        )
