"""``ParticleTable``: the per-image result of :func:`antema_scale.particles.analyze_mask`.

The table keeps the per-particle masks (boolean crops) *out* of the DataFrame, so the
DataFrame stays small, Parquet-friendly and cheap to concatenate across images.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

#: Columns of :attr:`ParticleTable.particles`, in order (lengths in nm, areas in nm²,
#: centroids in nm from the centre of pixel (0, 0), bounding boxes in pixels with
#: exclusive maxima, as ``skimage.measure.regionprops``).
PARTICLE_COLUMNS: tuple[str, ...] = (
    "image_id",
    "particle_id",
    "area_nm2",
    "equivalent_diameter_nm",
    "min_feret_nm",
    "max_feret_nm",
    "aspect_ratio",
    "perimeter_nm",
    "circularity",
    "convexity",
    "solidity",
    "centroid_y_nm",
    "centroid_x_nm",
    "bbox_min_row",
    "bbox_min_col",
    "bbox_max_row",
    "bbox_max_col",
    "separated",
    "separation_method",
    "parent_region",
    "erosion_steps",
    "touches_border",
    "nonconvex",
)

#: Columns of :attr:`ParticleTable.excluded`: regions (or separated pieces) that were not
#: measured, with the reason.
EXCLUDED_COLUMNS: tuple[str, ...] = (
    "image_id",
    "region_id",
    "reason",
    "area_nm2",
    "convexity",
    "bbox_min_row",
    "bbox_min_col",
    "bbox_max_row",
    "bbox_max_col",
)

#: Measurements summarised per image by :meth:`ParticleTable.summary`.
SUMMARY_MEASUREMENTS: tuple[str, ...] = (
    "area_nm2",
    "equivalent_diameter_nm",
    "min_feret_nm",
    "max_feret_nm",
    "aspect_ratio",
    "perimeter_nm",
    "circularity",
    "convexity",
    "solidity",
)

_INT_COLUMNS = (
    "particle_id",
    "bbox_min_row",
    "bbox_min_col",
    "bbox_max_row",
    "bbox_max_col",
    "parent_region",
    "erosion_steps",
)
_BOOL_COLUMNS = ("separated", "touches_border", "nonconvex")


@dataclass(frozen=True)
class ParticleCrop:
    """The pixel mask of one particle, cropped to its bounding box.

    Attributes
    ----------
    image_id : str
        Image the particle belongs to.
    particle_id : int
        Row key in :attr:`ParticleTable.particles` (unique within the image).
    mask : numpy.ndarray of bool
        The particle's pixels within its bounding box. Separated particles may overlap:
        the overlap belongs to every particle that covers it.
    offset : tuple of int
        ``(row, col)`` of ``mask[0, 0]`` in the full image (px).
    """

    image_id: str
    particle_id: int
    mask: np.ndarray
    offset: tuple[int, int]

    def paste(self, shape: tuple[int, int]) -> np.ndarray:
        """Return the particle as a full-frame boolean image of ``shape`` (px)."""
        out = np.zeros(shape, dtype=bool)
        r, c = self.offset
        h, w = self.mask.shape
        out[r : r + h, c : c + w] = self.mask
        return out


def empty_particles_frame() -> pd.DataFrame:
    """An empty particle DataFrame with the right columns and dtypes."""
    return typed_particles_frame(pd.DataFrame({name: [] for name in PARTICLE_COLUMNS}))


def typed_particles_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Order the particle columns and give them stable dtypes (int64, bool, float, str)."""
    frame = frame.reindex(columns=list(PARTICLE_COLUMNS))
    for name in _INT_COLUMNS:
        frame[name] = frame[name].astype("int64")
    for name in _BOOL_COLUMNS:
        frame[name] = frame[name].astype(bool)
    for name in ("image_id", "separation_method"):
        frame[name] = frame[name].astype(object)
    for name in PARTICLE_COLUMNS:
        if (
            name not in _INT_COLUMNS
            and name not in _BOOL_COLUMNS
            and name
            not in (
                "image_id",
                "separation_method",
            )
        ):
            frame[name] = frame[name].astype("float64")
    return frame.reset_index(drop=True)


def typed_excluded_frame(rows: list[dict[str, object]]) -> pd.DataFrame:
    """Build the excluded-regions DataFrame from row dicts with stable dtypes."""
    frame = pd.DataFrame(rows, columns=list(EXCLUDED_COLUMNS))
    for name in ("region_id", "bbox_min_row", "bbox_min_col", "bbox_max_row", "bbox_max_col"):
        frame[name] = frame[name].astype("int64")
    for name in ("area_nm2", "convexity"):
        frame[name] = frame[name].astype("float64")
    return frame


@dataclass
class ParticleTable:
    """Particles measured in one image (or several, after :meth:`concat`).

    Attributes
    ----------
    particles : pandas.DataFrame
        One row per particle, columns :data:`PARTICLE_COLUMNS`.
    excluded : pandas.DataFrame
        One row per excluded region or discarded separated piece, columns
        :data:`EXCLUDED_COLUMNS`; ``reason`` says why (e.g. ``"convexity below 0.5"``).
    masks : list of ParticleCrop
        Per-particle crops, in the same order as the rows of ``particles``.
    image_ids : list of str
        Every image analysed, including images with no particle (so that summaries
        report a count of 0 for them).
    """

    particles: pd.DataFrame = field(default_factory=empty_particles_frame)
    excluded: pd.DataFrame = field(default_factory=lambda: typed_excluded_frame([]))
    masks: list[ParticleCrop] = field(default_factory=list)
    image_ids: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.particles)

    def summary(self) -> pd.DataFrame:
        """Per-image count, mean and standard deviation of each measurement.

        The reference program's "MeanValues" sheet. Standard deviations are sample
        standard deviations (``ddof=1``; NaN for a single particle).

        Returns
        -------
        pandas.DataFrame
            Index ``image_id``; columns ``count``, ``excluded_count`` and
            ``<measurement>_mean`` / ``<measurement>_std`` for every measurement in
            :data:`SUMMARY_MEASUREMENTS` (units as in the particle table).
        """
        ids = list(dict.fromkeys(list(self.image_ids) + list(self.particles["image_id"])))
        grouped = self.particles.groupby("image_id", sort=False)
        columns: dict[str, pd.Series] = {"count": grouped.size()}
        excluded_counts = self.excluded.groupby("image_id", sort=False).size()
        for name in SUMMARY_MEASUREMENTS:
            values = self.particles[name].replace([np.inf, -np.inf], np.nan)
            by_image = values.groupby(self.particles["image_id"], sort=False)
            columns[f"{name}_mean"] = by_image.mean()
            columns[f"{name}_std"] = by_image.std(ddof=1)
        summary = pd.DataFrame(columns).reindex(ids)
        summary["count"] = summary["count"].fillna(0).astype("int64")
        summary.insert(1, "excluded_count", excluded_counts.reindex(ids).fillna(0).astype("int64"))
        summary.index.name = "image_id"
        return summary

    @classmethod
    def concat(cls, tables: list[ParticleTable]) -> ParticleTable:
        """Concatenate tables of several images (particle ids stay per image).

        Parameters
        ----------
        tables : list of ParticleTable
            Tables to join, in order.

        Returns
        -------
        ParticleTable
            A new table; ``masks`` stay aligned with the rows of ``particles``.
        """
        if not tables:
            return cls()
        particles = [t.particles for t in tables if len(t.particles)]
        excluded = [t.excluded for t in tables if len(t.excluded)]
        return cls(
            particles=typed_particles_frame(pd.concat(particles, ignore_index=True))
            if particles
            else empty_particles_frame(),
            excluded=typed_excluded_frame(pd.concat(excluded, ignore_index=True).to_dict("records"))
            if excluded
            else typed_excluded_frame([]),
            masks=[crop for t in tables for crop in t.masks],
            image_ids=list(dict.fromkeys(i for t in tables for i in t.image_ids)),
        )
