"""Which sample each image (and so each particle) belongs to.

A sample is what a microscopist prepared once and imaged in many places. By default it is
the folder that held the image file; a user mapping (a csv ``image_id,sample`` or a
dictionary) overrides that.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path, PurePath

import pandas as pd

#: Sample name given to particles of images the mapping does not mention.
UNASSIGNED_SAMPLE = "unassigned"

SampleMapping = Mapping[str, str] | pd.Series | str | Path


class SampleMappingError(ValueError):
    """A sample mapping file or object cannot be used (names the file and the problem)."""


def read_sample_mapping(path: str | Path) -> dict[str, str]:
    """Read a csv that maps images to samples.

    Parameters
    ----------
    path : str or pathlib.Path
        A csv with a header and the columns ``sample`` and either ``image_id`` or
        ``source`` (the image file name or path as given to the pipeline).

    Returns
    -------
    dict
        Image id (or source) -> sample name.

    Raises
    ------
    SampleMappingError
        If the file is missing, unreadable, lacks the columns, or maps one image twice
        to different samples.
    """
    path = Path(path)
    try:
        table = pd.read_csv(path, dtype=str)
    except FileNotFoundError as error:
        raise SampleMappingError(f"sample mapping {path} does not exist") from error
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise SampleMappingError(f"sample mapping {path} is not a readable csv: {error}") from error
    table.columns = [str(column).strip() for column in table.columns]
    key = "image_id" if "image_id" in table.columns else "source"
    if "sample" not in table.columns or key not in table.columns:
        raise SampleMappingError(
            f"sample mapping {path} needs the columns 'image_id' (or 'source') and 'sample', "
            f"found {list(table.columns)}"
        )
    table = table[[key, "sample"]].dropna().astype(str)
    table = table.apply(lambda column: column.str.strip())
    conflicts = table.groupby(key)["sample"].nunique()
    conflicts = conflicts[conflicts > 1]
    if len(conflicts):
        raise SampleMappingError(
            f"sample mapping {path} assigns {list(conflicts.index)[:5]} to more than one sample"
        )
    return dict(zip(table[key], table["sample"], strict=True))


def sample_from_source(source: str) -> str:
    """The sample name implied by a file path: the name of the folder that holds it.

    Parameters
    ----------
    source : str
        Path of the image file (as recorded by the pipeline).

    Returns
    -------
    str
        The parent folder name; ``"."`` for a bare file name; ``"unassigned"`` for an
        empty source.
    """
    if not str(source).strip():
        return UNASSIGNED_SAMPLE
    parent = PurePath(str(source)).parent.name
    return parent or "."


def assign_samples(
    particles: pd.DataFrame,
    images: pd.DataFrame | None = None,
    mapping: SampleMapping | None = None,
) -> pd.DataFrame:
    """Return a copy of the particle table with a ``sample`` column.

    Precedence: an explicit ``mapping`` (by image id, else by source path or file name);
    then an existing ``sample`` column; then the folder of each image's ``source`` (from
    ``particles`` or from ``images`` joined on ``image_id``); else one sample ``"all"``.

    Parameters
    ----------
    particles : pandas.DataFrame
        Particle table with an ``image_id`` column.
    images : pandas.DataFrame, optional
        Image table with ``image_id`` and ``source`` columns.
    mapping : mapping, pandas.Series, str or pathlib.Path, optional
        Image id (or source) -> sample, or the path of a csv read by
        :func:`read_sample_mapping`. Images it does not mention get ``"unassigned"``.

    Returns
    -------
    pandas.DataFrame
        The particles with a string ``sample`` column.

    Raises
    ------
    SampleMappingError
        If ``mapping`` is a path that cannot be read (see :func:`read_sample_mapping`).
    KeyError
        If ``particles`` has no ``image_id`` column but one is needed.
    """
    result = particles.copy()
    sources = _sources_per_particle(result, images)
    if mapping is not None:
        lookup = _as_dict(mapping)
        if "image_id" not in result.columns:
            raise KeyError("the particle table has no 'image_id' column to map to samples")
        samples = result["image_id"].astype(str).map(lookup)
        if sources is not None:
            by_path = sources.map(lookup)
            by_name = sources.map(lambda source: PurePath(source).name).map(lookup)
            samples = samples.fillna(by_path).fillna(by_name)
        result["sample"] = samples.fillna(UNASSIGNED_SAMPLE).astype(str)
    elif "sample" in result.columns:
        result["sample"] = result["sample"].astype(str)
    elif sources is not None:
        result["sample"] = sources.map(sample_from_source).astype(str)
    else:
        result["sample"] = "all"
    return result


def _sources_per_particle(particles: pd.DataFrame, images: pd.DataFrame | None) -> pd.Series | None:
    if "source" in particles.columns:
        return particles["source"].astype(str)
    if (
        images is not None
        and "image_id" in particles.columns
        and {"image_id", "source"} <= set(images.columns)
    ):
        lookup = dict(
            zip(images["image_id"].astype(str), images["source"].astype(str), strict=False)
        )
        mapped = particles["image_id"].astype(str).map(lookup)
        if mapped.notna().any():
            return mapped.fillna("")
    return None


def _as_dict(mapping: SampleMapping) -> dict[str, str]:
    if isinstance(mapping, str | Path):
        return read_sample_mapping(mapping)
    if isinstance(mapping, pd.Series):
        return {str(key): str(value) for key, value in mapping.items()}
    return {str(key): str(value) for key, value in mapping.items()}
