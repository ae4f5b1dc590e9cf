"""``antema-scale train``: train a segmentation network on folders and/or synthetic data."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Annotated, Any

import typer


def parse_folder_spec(spec: str, default_pixel_size_nm: float) -> tuple[str, str, float]:
    """Parse ``IMAGES_DIR:MASKS_DIR[:PIXEL_SIZE_NM]`` into a folder triple.

    Raises
    ------
    typer.BadParameter
        Wrong number of parts, a missing folder or a non-positive pixel size.
    """
    parts = spec.split(":")
    if len(parts) not in (2, 3):
        raise typer.BadParameter(
            f"{spec!r}: expected IMAGES_DIR:MASKS_DIR or IMAGES_DIR:MASKS_DIR:PIXEL_SIZE_NM"
        )
    try:
        pixel = float(parts[2]) if len(parts) == 3 else default_pixel_size_nm
    except ValueError as exc:
        raise typer.BadParameter(f"{spec!r}: pixel size {parts[2]!r} is not a number") from exc
    if not pixel > 0:
        raise typer.BadParameter(f"{spec!r}: pixel size must be > 0 nm/px")
    for part in parts[:2]:
        if not Path(part).is_dir():
            raise typer.BadParameter(f"{spec!r}: folder {part!r} does not exist")
    return parts[0], parts[1], pixel


def register(app: typer.Typer) -> None:
    """Add the ``train`` command to ``app``."""

    @app.command("train")
    def train_command(
        folder: Annotated[
            list[str] | None,
            typer.Option(
                "--folder",
                help="IMAGES_DIR:MASKS_DIR[:PIXEL_SIZE_NM] of labelled images (mask/label > 0 "
                "is particle); repeatable. Split 60/20/20 with --split-seed.",
            ),
        ] = None,
        emps: Annotated[
            Path | None,
            typer.Option(help="EMPS folder (images/ + segmaps/), at the nominal pixel size."),
        ] = None,
        synthetic: int = typer.Option(0, help="Number of synthetic micrographs (60/20/20 split)."),
        synthetic_size: int = typer.Option(512, help="Side of synthetic micrographs, px."),
        raft_validation: int = typer.Option(
            0,
            help="Add this many dense-raft scenes (touching particles) to the validation "
            "split, so that checkpoints that merge neighbours score low (12 recommended).",
        ),
        raft_training: int = typer.Option(
            0,
            help="Add this many dense-raft scenes (touching particles, HAADF films) to the "
            "training split; they join the synthetic images.",
        ),
        sparse_training: int = typer.Option(
            0,
            help="Add this many sparse scenes (0.3-3 % coverage on uneven backgrounds) to the "
            "training split; they join the synthetic images.",
        ),
        annotations: float = typer.Option(
            0.0,
            help="Fraction of the synthetic training images with a burned-in scale bar, "
            "label and panel letter (as exported figures have; never particles).",
        ),
        generator: str = typer.Option(
            "synth", help="'synth' (antema_scale.synth) or 'standin' (simple ellipses)."
        ),
        width: int = typer.Option(16, help="Base width of the ResNet-18 encoder (64 = standard)."),
        backbone: str = typer.Option("resnet18", help="Backbone name."),
        detail_channels: int = typer.Option(
            0,
            help="Channels of the half-resolution detail refinement of the decoder's "
            "output (0 = off, the DeepLabV3+ paper's network); a model without it can "
            "initialise one with it (--init-model).",
        ),
        output_stride: int = typer.Option(
            16,
            help="Encoder output stride: 16 (DeepLabV3+ default) or 8 (denser deep features "
            "for small particles, about twice the compute); a model trained at one can "
            "initialise the other (--init-model).",
        ),
        gap_channel: bool = typer.Option(
            False,
            help="Also predict the narrow gaps between touching particles (second output, "
            "trained on the gaps --gap-px defines); the mask is particle and not gap.",
        ),
        pixel_min: float = typer.Option(0.125, help="Working pixel size range: minimum, nm/px."),
        pixel_max: float = typer.Option(0.5, help="Working pixel size range: maximum, nm/px."),
        epochs: int = typer.Option(30, help="Epochs."),
        steps_per_epoch: int = typer.Option(150, help="Batches per epoch."),
        batch_size: int = typer.Option(8, help="Tiles per batch."),
        tile: int = typer.Option(256, help="Training tile side, px."),
        lr: float = typer.Option(2e-3, help="Peak learning rate (AdamW, cosine decay)."),
        invert: float = typer.Option(0.3, help="Probability of polarity inversion."),
        scale_min: float = typer.Option(0.7, help="Augmentation zoom range: minimum."),
        scale_max: float = typer.Option(1.4, help="Augmentation zoom range: maximum."),
        shading: float = typer.Option(
            0.0,
            help="Largest amplitude (standard deviations) of a smooth uneven background "
            "added to half of the training tiles (0 = off).",
        ),
        gap_weight: float = typer.Option(
            4.0,
            help="Extra cross-entropy weight of background in gaps narrower than --gap-px "
            "between particles (0 = plain loss); keeps touching particles apart.",
        ),
        gap_px: int = typer.Option(
            7, help="Widest gap (working-grid px) that --gap-weight covers."
        ),
        outline_weight: float = typer.Option(
            0.0,
            help="Extra cross-entropy weight of the pixels on either side of every particle "
            "outline (0 = off).",
        ),
        hard_examples: float = typer.Option(
            0.0,
            help="Draw the training images the starting network gets wrong more often: an "
            "image of average error (1 - particle IoU, one pass) this many times more than "
            "a perfect one, sources kept in balance (0 = off; for fine-tunes).",
        ),
        ema_decay: float = typer.Option(
            0.0,
            help="Validate and save an exponential moving average of the weights, this "
            "decay per step (e.g. 0.999: about the last 1000 steps); 0 = the last step's "
            "weights.",
        ),
        anchor_weight: float = typer.Option(
            0.0,
            help="Fine-tunes with --sparse-training/--raft-training: train every other "
            "image toward the starting model's own probabilities instead of its labels, "
            "with this weight, so that only the added scenes are learnt (0 = off).",
        ),
        freeze_batch_norm: bool = typer.Option(
            False,
            help="Fine-tunes: keep the starting model's batch-norm statistics (batch norm "
            "normalises in training as in inference; its scale and shift still learn).",
        ),
        loss: str = typer.Option(
            "bce-dice",
            help="Loss: bce-dice (cross-entropy + soft Dice) or bce-lovasz (cross-entropy + "
            "Lovász hinge, a surrogate of 1 - IoU).",
        ),
        seed: int = typer.Option(0, help="Random seed of sampling and initialisation."),
        split_seed: int = typer.Option(0, help="Seed of the 60/20/20 split."),
        threads: int = typer.Option(2, help="torch CPU threads."),
        data_workers: int | None = typer.Option(
            None,
            help="Processes that generate/prepare the training data (default: --threads).",
        ),
        device: str = typer.Option("auto", help="auto|cpu|cuda|mps"),
        precision: str = typer.Option(
            "auto",
            help="Training forward pass: auto | fp32 | bf16. auto = bf16 on a GPU that has "
            "it, fp32 elsewhere; bf16 takes ~0.8x the time on CPUs with AMX/AVX512-BF16.",
        ),
        max_images: int | None = typer.Option(
            None, help="At most this many images per source and split (for quick runs)."
        ),
        output: Annotated[Path, typer.Option(help="Run folder (checkpoints, logs).")] = Path(
            "runs/train"
        ),
        resume: bool = typer.Option(False, help="Continue from OUTPUT/state.pt."),
        init_model: str | None = typer.Option(
            None,
            help="Fine-tune: start from this model file's weights ('default' = the shipped "
            "model); same --backbone/--pixel-min/--pixel-max required (it may lack the "
            "--detail-channels refinement); a larger --width grows it, starting from the "
            "same predictions.",
        ),
    ) -> None:
        """Train the DeepLabV3+ segmentation network; writes best.pt/last.pt in OUTPUT."""
        from rich.console import Console

        from antema_scale.segment.augment import Augmentation
        from antema_scale.segment.datasets import EMPS_NOMINAL_PIXEL_SIZE_NM
        from antema_scale.segment.network import OUTPUT_STRIDES
        from antema_scale.segment.train import (
            TRAINING_LOSSES,
            TRAINING_PRECISIONS,
            TrainConfig,
            train,
        )

        console = Console()
        folders = [parse_folder_spec(s, EMPS_NOMINAL_PIXEL_SIZE_NM) for s in folder or []]
        if emps is not None:
            folders.append(
                parse_folder_spec(f"{emps}/images:{emps}/segmaps", EMPS_NOMINAL_PIXEL_SIZE_NM)
            )
        if not folders and synthetic <= 0:
            raise typer.BadParameter("give --folder, --emps and/or --synthetic N")
        if not 0 < scale_min <= scale_max:
            raise typer.BadParameter(
                f"need 0 < --scale-min <= --scale-max, got {scale_min}, {scale_max}"
            )
        if raft_training < 0:
            raise typer.BadParameter(f"--raft-training must be >= 0, got {raft_training}")
        if sparse_training < 0:
            raise typer.BadParameter(f"--sparse-training must be >= 0, got {sparse_training}")
        if raft_validation < 0:
            raise typer.BadParameter(f"--raft-validation must be >= 0, got {raft_validation}")
        if not 0 <= annotations <= 1:
            raise typer.BadParameter(f"--annotations must be in [0, 1], got {annotations}")
        if outline_weight < 0:
            raise typer.BadParameter(f"--outline-weight must be >= 0, got {outline_weight}")
        if hard_examples < 0:
            raise typer.BadParameter(f"--hard-examples must be >= 0, got {hard_examples}")
        if not 0 <= ema_decay < 1:
            raise typer.BadParameter(f"--ema-decay must be in [0, 1), got {ema_decay}")
        if anchor_weight < 0:
            raise typer.BadParameter(f"--anchor-weight must be >= 0, got {anchor_weight}")
        if anchor_weight > 0 and init_model is None:
            raise typer.BadParameter("--anchor-weight needs --init-model (what to anchor to)")
        if anchor_weight > 0 and not (sparse_training or raft_training):
            raise typer.BadParameter(
                "--anchor-weight needs --sparse-training or --raft-training (scenes to learn)"
            )
        if freeze_batch_norm and init_model is None:
            raise typer.BadParameter("--freeze-batch-norm needs --init-model (whose statistics)")
        if shading < 0:
            raise typer.BadParameter(f"--shading must be >= 0, got {shading}")
        if data_workers is not None and data_workers < 1:
            raise typer.BadParameter(f"--data-workers must be >= 1, got {data_workers}")
        if detail_channels < 0:
            raise typer.BadParameter(f"--detail-channels must be >= 0, got {detail_channels}")
        if output_stride not in OUTPUT_STRIDES:
            raise typer.BadParameter(
                f"--output-stride must be one of {', '.join(map(str, OUTPUT_STRIDES))}, "
                f"got {output_stride}"
            )
        if init_model not in (None, "default") and not Path(init_model).is_file():
            raise typer.BadParameter(f"--init-model {init_model}: no such file")
        if precision not in TRAINING_PRECISIONS:
            raise typer.BadParameter(
                f"--precision must be one of {', '.join(TRAINING_PRECISIONS)}, got {precision!r}"
            )
        if loss not in TRAINING_LOSSES:
            raise typer.BadParameter(
                f"--loss must be one of {', '.join(TRAINING_LOSSES)}, got {loss!r}"
            )
        if generator not in ("synth", "standin"):
            raise typer.BadParameter(f"--generator must be synth or standin, got {generator!r}")
        config = TrainConfig(
            output_dir=str(output),
            folders=folders,
            synthetic_images=synthetic,
            synthetic_shape=(synthetic_size, synthetic_size),
            synthetic_generator=generator,
            synthetic_annotations=annotations,
            raft_validation_images=raft_validation,
            raft_training_images=raft_training,
            sparse_training_images=sparse_training,
            base_width=width,
            backbone=backbone,
            detail_channels=detail_channels,
            output_stride=output_stride,
            gap_channel=gap_channel,
            pixel_size_range_nm=(pixel_min, pixel_max),
            epochs=epochs,
            steps_per_epoch=steps_per_epoch,
            batch_size=batch_size,
            learning_rate=lr,
            seed=seed,
            split_seed=split_seed,
            threads=threads,
            data_workers=threads if data_workers is None else data_workers,
            device=device,
            precision=precision,
            max_images_per_source=max_images,
            augmentation=Augmentation(
                tile=tile, invert=invert, scale=(scale_min, scale_max), shading=shading
            ),
            gap_weight=gap_weight,
            gap_px=gap_px,
            outline_weight=outline_weight,
            hard_examples=hard_examples,
            ema_decay=ema_decay,
            anchor_weight=anchor_weight,
            freeze_batch_norm=freeze_batch_norm,
            loss=loss,
            init_model=init_model,
            command=shlex.join(["antema-scale", *sys.argv[1:]]),
        )

        def report(record: dict[str, object]) -> None:
            val = record["val"]
            parts = [
                f"{k}: IoU {m['iou_particle']:.3f} acc {m['global_accuracy']:.3f} "
                f"F1 {m['instance_f1']:.3f}"
                for k, m in val.items()  # type: ignore[union-attr]
            ]
            console.print(
                f"epoch {record['epoch']}/{epochs} loss {record['loss']:.4f} "
                f"({record['train_seconds']:.0f} s)  " + "  ".join(parts),
                highlight=False,
            )

        from rich.progress import Progress

        with Progress(console=console, transient=True) as bar:
            tasks: dict[str, Any] = {}

            def data_report(split: str, done: int, total: int) -> None:
                if split not in tasks:
                    label = (
                        "measuring the training images (--hard-examples)"
                        if split == "difficulty"
                        else f"preparing {split} images"
                    )
                    tasks[split] = bar.add_task(label, total=total)
                bar.update(tasks[split], completed=done)
                if done == total:  # the epochs' own lines follow
                    bar.remove_task(tasks[split])

            try:
                summary = train(config, resume=resume, progress=report, data_progress=data_report)
            except ValueError as exc:  # incompatible --init-model, no images, bad files
                console.print(f"[red]error:[/red] {exc}")
                raise typer.Exit(2) from exc
        console.print(
            f"best validation score {summary['best_val_score']:.4f}; model files in {output}"
        )
