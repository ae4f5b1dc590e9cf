"""The synthetic benchmark dataset: micrographs of fixed size and pixel size, with truth.

Every size gets its own folder ``<directory>/size-<N>/`` written by
:func:`antema_scale.synth.write_dataset` (``images/<stem>.h5``, ``masks/<stem>.png``,
``truth/``): bright-field and HAADF images alternate, the pixel size (0.25 nm/px) lies
inside the shipped model's working range so that no resampling changes the cost, and the
particles (6 nm mean diameter, 15 % coverage, "medium" overlap) are typical of the
paper's samples. The same ``(size, index, seed)`` always gives the same image.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

#: Default image sides of the benchmark, px.
DEFAULT_SIZES: tuple[int, ...] = (1024, 2048)
#: Pixel size of every benchmark image, nm/px (inside the model's working range).
BENCH_PIXEL_SIZE_NM = 0.25


@dataclass(frozen=True)
class BenchImage:
    """One benchmark micrograph on disk.

    Attributes
    ----------
    path : Path
        The HDF5 micrograph (``data`` + ``scale`` in nm).
    mask_path : Path
        PNG of the true union mask (particle = non-zero).
    size : int
        Image side, px.
    pixel_size_nm : float
        nm/px.
    n_particles : int
        Particles drawn in the image (truth rows).
    """

    path: Path
    mask_path: Path
    size: int
    pixel_size_nm: float
    n_particles: int

    @property
    def megapixels(self) -> float:
        """Pixels of the image in millions."""
        return self.size * self.size / 1e6

    def read_true_mask(self) -> np.ndarray:
        """The true union mask (bool, ``size`` x ``size``)."""
        from skimage.io import imread

        return np.asarray(imread(self.mask_path)) > 0


@dataclass
class BenchDataset:
    """The benchmark images, grouped by size.

    Attributes
    ----------
    directory : Path
        Root folder of the dataset.
    images : list of BenchImage
        Every image, sorted by size then file name.
    """

    directory: Path
    images: list[BenchImage] = field(default_factory=list)

    @property
    def sizes(self) -> list[int]:
        """Image sides present, ascending (px)."""
        return sorted({image.size for image in self.images})

    def of_size(self, size: int) -> list[BenchImage]:
        """The images of side ``size`` (px)."""
        return [image for image in self.images if image.size == size]

    def folder(self, size: int) -> Path:
        """Folder holding only the micrographs of side ``size`` (the pipeline's input)."""
        return self.directory / f"size-{size}" / "images"


def benchmark_config(size: int, *, pixel_size_nm: float = BENCH_PIXEL_SIZE_NM) -> object:
    """The :class:`antema_scale.synth.SynthConfig` of a ``size`` x ``size`` benchmark image.

    Parameters
    ----------
    size : int
        Image side, px (>= 64).
    pixel_size_nm : float
        nm/px.

    Returns
    -------
    antema_scale.synth.SynthConfig
    """
    from antema_scale.synth import SynthConfig

    if size < 64:
        raise ValueError(f"benchmark images must be at least 64 px wide, got {size}")
    if not pixel_size_nm > 0:
        raise ValueError(f"pixel size must be > 0 nm, got {pixel_size_nm}")
    return SynthConfig(
        mode="hrtem",
        image_size=size,
        pixel_size_nm=pixel_size_nm,
        shapes={"sphere": 0.6, "ellipsoid": 0.25, "cube": 0.15},
        diameter_mean_nm=6.0,
        diameter_spread=0.2,
        area_fraction=0.15,
        overlap="medium",
    )


def build_dataset(
    directory: str | Path,
    *,
    sizes: Sequence[int] = DEFAULT_SIZES,
    n_per_size: int = 4,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
) -> BenchDataset:
    """Write ``n_per_size`` synthetic micrographs of every size into ``directory``.

    Parameters
    ----------
    directory : str or Path
        Output folder (created); one sub-folder ``size-<N>`` per size.
    sizes : sequence of int
        Image sides, px.
    n_per_size : int
        Images per size (>= 1).
    seed : int
        Base seed; image ``i`` of every size uses seed ``seed + i``.
    progress : callable, optional
        Called with the number of images written so far.

    Returns
    -------
    BenchDataset
    """
    from antema_scale.synth import write_dataset

    if n_per_size < 1:
        raise ValueError(f"need at least one image per size, got n_per_size={n_per_size}")
    if not sizes:
        raise ValueError("give at least one image size")
    root = Path(directory)
    dataset = BenchDataset(directory=root)
    written = 0
    for size in sorted(set(int(s) for s in sizes)):
        config = benchmark_config(size)
        folder = root / f"size-{size}"
        index = write_dataset(folder, n_per_size, config=config, seed=seed, mode="mixed")
        for row in index.itertuples():
            dataset.images.append(
                BenchImage(
                    path=folder / str(row.h5_file),
                    mask_path=folder / str(row.mask_file),
                    size=size,
                    pixel_size_nm=float(row.pixel_size_nm),
                    n_particles=int(row.n_particles),
                )
            )
            written += 1
            if progress is not None:
                progress(written)
    return dataset
