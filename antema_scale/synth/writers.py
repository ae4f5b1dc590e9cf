"""Write synthetic micrographs, movies and their truth to files the readers ingest.

Image formats (all carry the pixel size, read back by :func:`antema_scale.io.read_micrograph`):

* ``h5`` — HDF5 with dataset ``data`` (float32, ``(y, x)`` or ``(frame, y, x)``) and
  attributes ``scale`` (nm/px) and ``scale_unit`` = ``"nm"`` (as the haadf-films data);
* ``tif`` — ImageJ TIFF (float32) with ``unit=nm`` and X/Y resolution in px per nm;
* ``zarr`` — written straight into an antema-scale Zarr store with
  :func:`antema_scale.io.write_image` (one group per image, as ``ingest`` would).

Layout of an output folder (images and truth apart, so that ``antema-scale analyze
DIR/images`` sees only micrographs, and ``images/`` + ``masks/`` pair up by file stem
for training):

* ``images/<stem>.h5`` / ``images/<stem>.tif`` (and ``images.zarr`` for "zarr");
* ``masks/<stem>.png`` — union mask (uint8, 255 = particle);
* ``truth/<stem>_particles.npz`` — every particle's own mask: ``ids`` (n,), ``offsets``
  (n, 2) (row, col), ``shapes`` (n, 2), and ``masks``: all crops flattened and
  concatenated (bool); read back with :func:`read_particle_crops`;
* ``truth/<stem>_truth.csv`` — the truth table (:mod:`antema_scale.synth.truth`).

A data set folder also gets ``truth.csv`` / ``truth.parquet`` (all particles, with
``image_id``), ``images.csv`` (one row per image: files, mode, pixel size, seed, config)
and ``manifest.json``. Movies get ``truth/<stem>_masks.npz`` (union masks per frame),
``truth/<stem>_particles_<frame>.npz``, ``truth/<stem>_tracks.csv`` and
``truth/<stem>_events.csv``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import tifffile
from skimage.io import imsave

from antema_scale.synth.config import SynthConfig
from antema_scale.synth.micrograph import SyntheticMicrograph, generate_micrograph
from antema_scale.synth.movie import SyntheticMovie
from antema_scale.synth.presets import random_config
from antema_scale.synth.truth import ParticleCrop

IMAGE_FORMATS: tuple[str, ...] = ("h5", "tif", "zarr")
MODES_OR_MIXED: tuple[str, ...] = ("hrtem", "haadf", "mixed")


def _check_formats(formats: Sequence[str]) -> None:
    unknown = [f for f in formats if f not in IMAGE_FORMATS]
    if unknown or not formats:
        raise ValueError(
            f"image formats must be a non-empty subset of {IMAGE_FORMATS}, got {list(formats)}"
        )


def write_hdf5_image(
    path: Path, data: np.ndarray, pixel_size_nm: float, attrs: dict[str, object] | None = None
) -> Path:
    """Write ``data`` (2-D or frames x 2-D) as HDF5 ``data`` with ``scale``/``scale_unit``."""
    with h5py.File(path, "w") as h5:
        dataset = h5.create_dataset("data", data=data, compression="gzip", compression_opts=1)
        dataset.attrs["scale"] = float(pixel_size_nm)
        dataset.attrs["scale_unit"] = "nm"
        for key, value in (attrs or {}).items():
            dataset.attrs[key] = value
    return path


def write_imagej_tiff(path: Path, data: np.ndarray, pixel_size_nm: float) -> Path:
    """Write an ImageJ-calibrated float32 TIFF (``unit=nm``, resolution in px per nm)."""
    metadata: dict[str, object] = {"unit": "nm"}
    if data.ndim == 3:
        metadata["axes"] = "TYX"
    tifffile.imwrite(
        path,
        np.asarray(data, dtype=np.float32),
        imagej=True,
        resolution=(1.0 / pixel_size_nm, 1.0 / pixel_size_nm),
        metadata=metadata,
    )
    return path


def write_particle_crops(path: Path, crops: Sequence[ParticleCrop], ids: Sequence[int]) -> Path:
    """Store per-particle crops (overlaps kept) compactly in one ``.npz``."""
    shapes = np.array([c.mask.shape for c in crops], dtype=np.int64).reshape(-1, 2)
    offsets = np.array([c.offset for c in crops], dtype=np.int64).reshape(-1, 2)
    flat = np.concatenate([c.mask.ravel() for c in crops]) if crops else np.zeros(0, bool)
    np.savez_compressed(
        path,
        ids=np.asarray(ids, dtype=np.int64),
        offsets=offsets,
        shapes=shapes,
        masks=flat.astype(bool),
    )
    return path


def read_particle_crops(path: str | Path) -> tuple[list[int], list[ParticleCrop]]:
    """Read back ``(ids, crops)`` written by :func:`write_particle_crops`."""
    with np.load(path) as data:
        ids, offsets, shapes, flat = data["ids"], data["offsets"], data["shapes"], data["masks"]
    crops: list[ParticleCrop] = []
    start = 0
    for (h, w), (r, c) in zip(shapes, offsets, strict=True):
        size = int(h * w)
        crops.append(
            ParticleCrop(
                mask=flat[start : start + size].reshape(int(h), int(w)), offset=(int(r), int(c))
            )
        )
        start += size
    return [int(i) for i in ids], crops


def _write_zarr(store_path: Path, image: object, image_id: str) -> None:
    from antema_scale.io import create_store, write_image

    create_store(store_path)
    write_image(store_path, image, image_id)  # type: ignore[arg-type]


def write_micrograph(
    micrograph: SyntheticMicrograph,
    directory: str | Path,
    stem: str,
    *,
    formats: Sequence[str] = ("h5",),
    zarr_store: str | Path | None = None,
    separate_folders: bool = True,
) -> dict[str, Path]:
    """Write one synthetic micrograph and its truth files.

    Parameters
    ----------
    micrograph : SyntheticMicrograph
    directory : path
        Output folder (created).
    stem : str
        File name stem (also the image id in a Zarr store).
    formats : sequence of {"h5", "tif", "zarr"}
        Image formats to write.
    zarr_store : path, optional
        Store for ``"zarr"`` (default ``<directory>/images.zarr``).
    separate_folders : bool
        True: the layout above (``images/``, ``masks/`` with PNG masks, ``truth/``).
        False: images straight in ``directory`` and the union mask as
        ``truth/<stem>_mask.npz``, so that analysing ``directory`` recursively meets no
        file but micrographs (what ``antema-scale demo`` does).

    Returns
    -------
    dict
        Paths written, by kind (``h5``, ``tif``, ``zarr``, ``mask``, ``particles``, ``truth``).
    """
    _check_formats(formats)
    out = Path(directory)
    images_dir, masks_dir, truth_dir = _subfolders(out, separate_folders)
    px = micrograph.pixel_size_nm
    written: dict[str, Path] = {}
    if "h5" in formats:
        written["h5"] = write_hdf5_image(
            images_dir / f"{stem}.h5",
            micrograph.image,
            px,
            {
                "synthetic_mode": micrograph.mode,
                "synthetic_seed": -1 if micrograph.seed is None else micrograph.seed,
            },
        )
    if "tif" in formats:
        written["tif"] = write_imagej_tiff(images_dir / f"{stem}.tif", micrograph.image, px)
    if "zarr" in formats:
        store = Path(zarr_store) if zarr_store is not None else out / "images.zarr"
        image = micrograph.to_xarray()
        image.attrs["sha256"] = hashlib.sha256(micrograph.image.tobytes()).hexdigest()
        image.attrs["source"] = str(images_dir / stem)
        image.attrs["pixel_size_origin"] = "synthetic"
        _write_zarr(store, image, stem)
        written["zarr"] = store
    if separate_folders:
        written["mask"] = masks_dir / f"{stem}.png"
        imsave(written["mask"], micrograph.mask.astype(np.uint8) * 255, check_contrast=False)
    else:
        written["mask"] = truth_dir / f"{stem}_mask.npz"
        np.savez_compressed(written["mask"], mask=micrograph.mask)
    truth = micrograph.truth
    written["particles"] = write_particle_crops(
        truth_dir / f"{stem}_particles.npz", micrograph.particles, list(truth["particle_id"])
    )
    written["truth"] = truth_dir / f"{stem}_truth.csv"
    truth.to_csv(written["truth"], index=False)
    return written


def _subfolders(out: Path, separate_images: bool = True) -> tuple[Path, Path, Path]:
    """Image, mask and truth folders under ``out`` (created).

    ``separate_images=False`` puts images in ``out`` itself and masks with the truth.
    """
    if separate_images:
        folders = (out / "images", out / "masks", out / "truth")
    else:
        folders = (out, out / "truth", out / "truth")
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
    return folders


def _dataset_config(
    index: int,
    seed: int,
    mode: str,
    config: SynthConfig | None,
    image_size: int | tuple[int, int],
    overlap: str | None,
) -> SynthConfig:
    image_mode = ("hrtem", "haadf")[index % 2] if mode == "mixed" else mode
    if config is None:
        return random_config(
            np.random.default_rng([seed, index]),
            mode=image_mode,
            image_size=image_size,
            overlap=overlap,
        )
    changes: dict[str, object] = {"mode": image_mode}
    if overlap is not None:
        changes["overlap"] = overlap
    return config.with_(**changes)


def write_dataset(
    directory: str | Path,
    n: int,
    *,
    config: SynthConfig | None = None,
    seed: int = 0,
    mode: str = "mixed",
    image_size: int | tuple[int, int] = 512,
    overlap: str | None = None,
    formats: Sequence[str] = ("h5",),
    zarr_store: str | Path | None = None,
    progress: Callable[[int], None] | None = None,
) -> pd.DataFrame:
    """Write ``n`` synthetic micrographs with truth into ``directory``.

    Parameters
    ----------
    directory : path
        Output folder (created).
    n : int
        Number of images.
    config : SynthConfig, optional
        Fixed configuration; None draws a varied one per image (:func:`random_config`).
    seed : int
        Base seed: image ``i`` uses seed ``seed + i`` (and config draw ``[seed, i]``).
    mode : {"hrtem", "haadf", "mixed"}
        Imaging mode; "mixed" alternates.
    image_size : int or (int, int)
        Image size (px) when ``config`` is None.
    overlap : {"none", "low", "medium", "high"} or None
        Force this overlap level on every image (None: the config's / a varied one).
    formats : sequence of {"h5", "tif", "zarr"}
        Image formats.
    zarr_store : path, optional
        Zarr store for the "zarr" format (default ``<directory>/images.zarr``).
    progress : callable, optional
        Called with the number of images done after each image.

    Returns
    -------
    pandas.DataFrame
        The image index (also written as ``images.csv``).
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if mode not in MODES_OR_MIXED:
        raise ValueError(f"mode must be one of {MODES_OR_MIXED}, got {mode!r}")
    _check_formats(formats)
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    images, truths = [], []
    for i in range(n):
        image_config = _dataset_config(i, seed, mode, config, image_size, overlap)
        image_seed = seed + i
        mic = generate_micrograph(image_config, image_seed)
        stem = f"synth_{image_config.mode}_{image_seed:06d}"
        written = write_micrograph(mic, out, stem, formats=formats, zarr_store=zarr_store)
        truth = mic.truth.copy()
        truth.insert(0, "image_id", stem)
        truths.append(truth)
        images.append(
            {
                "image_id": stem,
                "mode": image_config.mode,
                "seed": image_seed,
                "pixel_size_nm": mic.pixel_size_nm,
                "height": mic.image.shape[0],
                "width": mic.image.shape[1],
                "n_particles": len(truth),
                "n_overlapping": int(truth["overlaps"].sum()),
                **{
                    f"{kind}_file": str(path.relative_to(out))
                    if path.is_relative_to(out)
                    else str(path)
                    for kind, path in written.items()
                },
                "config": json.dumps(image_config.to_dict()),
            }
        )
        if progress is not None:
            progress(i + 1)
    index = pd.DataFrame(images)
    index.to_csv(out / "images.csv", index=False)
    all_truth = pd.concat(truths, ignore_index=True) if truths else pd.DataFrame()
    all_truth.to_csv(out / "truth.csv", index=False)
    if len(all_truth):
        all_truth.to_parquet(out / "truth.parquet", index=False)
    (out / "manifest.json").write_text(
        json.dumps(
            {
                "generator": "antema_scale.synth",
                "n_images": n,
                "seed": seed,
                "mode": mode,
                "formats": list(formats),
                "overlap": overlap,
                "fixed_config": None if config is None else config.to_dict(),
            },
            indent=2,
        )
    )
    return index


def write_movie(
    movie: SyntheticMovie,
    directory: str | Path,
    stem: str,
    *,
    formats: Sequence[str] = ("h5",),
    zarr_store: str | Path | None = None,
) -> dict[str, Path]:
    """Write a movie as a 3-D stack (frame, y, x) plus its truth tables.

    Writes ``images/<stem>.h5`` / ``images/<stem>.tif`` / a Zarr group, and under
    ``truth/``: ``<stem>_masks.npz`` (union masks, bool ``(frame, y, x)``),
    ``<stem>_tracks.csv`` (per frame, per particle, with persistent ``particle_id``),
    ``<stem>_events.csv`` and ``<stem>_particles_<frame>.npz``.
    """
    _check_formats(formats)
    out = Path(directory)
    images_dir, truth_dir = out / "images", out / "truth"
    images_dir.mkdir(parents=True, exist_ok=True)
    truth_dir.mkdir(parents=True, exist_ok=True)
    frames = movie.frames
    px = movie.pixel_size_nm
    written: dict[str, Path] = {}
    if "h5" in formats:
        written["h5"] = write_hdf5_image(
            images_dir / f"{stem}.h5", frames, px, {"frame_interval_s": movie.frame_interval_s}
        )
    if "tif" in formats:
        written["tif"] = write_imagej_tiff(images_dir / f"{stem}.tif", frames, px)
    if "zarr" in formats:
        import xarray as xr

        store = Path(zarr_store) if zarr_store is not None else out / "images.zarr"
        n, rows, cols = frames.shape
        image = xr.DataArray(
            frames,
            dims=("frame", "y", "x"),
            coords={
                "frame": np.arange(n),
                "y": np.arange(rows) * px,
                "x": np.arange(cols) * px,
                "time": ("frame", np.arange(n) * movie.frame_interval_s),
            },
            attrs={
                "pixel_size_nm": px,
                "pixel_size_nm_y": px,
                "pixel_size_nm_x": px,
                "units_original": "nm",
                "source": str(images_dir / stem),
                "format": "synthetic",
                "sha256": hashlib.sha256(frames.tobytes()).hexdigest(),
                "pixel_size_origin": "synthetic",
            },
        )
        _write_zarr(store, image, stem)
        written["zarr"] = store
    written["masks"] = truth_dir / f"{stem}_masks.npz"
    np.savez_compressed(written["masks"], masks=movie.masks)
    for frame, mic in enumerate(movie.micrographs):
        write_particle_crops(
            truth_dir / f"{stem}_particles_{frame:04d}.npz",
            mic.particles,
            list(mic.truth["particle_id"]),
        )
    written["tracks"] = truth_dir / f"{stem}_tracks.csv"
    movie.tracks.to_csv(written["tracks"], index=False)
    written["events"] = truth_dir / f"{stem}_events.csv"
    movie.events.to_csv(written["events"], index=False)
    return written
