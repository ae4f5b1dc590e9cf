"""Particle shapes: projected outlines and projected thickness, in nanometres.

Every particle is described by a :class:`ParticleSpec` (centre, size, orientation, shape
parameters, all lengths in nm). :func:`rasterize_particle` evaluates the shape on the
pixel grid of the particle's bounding box only (never on the full frame) and returns

* the exact truth mask: a pixel belongs to the particle when its *centre* lies inside the
  projected outline (``gauge <= 1``);
* the projected thickness in nm at every pixel centre (what the imaging models turn into
  contrast);
* an anti-aliased coverage in ``[0, 1]`` (for rendering only, never for truth).

Pixel convention used throughout :mod:`antema_scale.synth`: the centre of pixel
``(row, col)`` lies at ``(row * pixel_size_nm, col * pixel_size_nm)`` nm, so centroids in
nm are ``pixel-index centroid * pixel_size_nm`` (what ``skimage.measure.regionprops``
gives times the pixel size).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: Shapes the generator knows, with the 3-D body each one stands for.
SHAPES: dict[str, str] = {
    "sphere": "sphere, circular projection, dome-shaped thickness",
    "ellipsoid": "ellipsoid, elliptical projection, dome-shaped thickness",
    "cube": "cube seen along an axis: rounded square (superellipse), flat thickness",
    "octahedron": "octahedron seen along [111]: hexagon, thickest in the middle",
    "prism": "triangular platelet (nanoprism): triangle, flat thin thickness",
    "rod": "rod: capsule outline (rectangle with round caps), cylinder thickness",
    "irregular": "slightly irregular blob: circle with a few random harmonics of radius",
}


@dataclass
class ParticleSpec:
    """Geometry of one particle, lengths in nm.

    Parameters
    ----------
    shape : str
        One of :data:`SHAPES`.
    center_y_nm, center_x_nm : float
        Centre of the projected outline, nm (pixel ``(r, c)`` centre is at
        ``(r * px, c * px)``).
    radius_nm : float
        Half of the nominal size: sphere radius, semi-major axis of an ellipse, half
        the edge of a cube, circumradius of a hexagon or triangle, half the total length of
        a rod, mean radius of an irregular blob.
    aspect : float
        Major / minor extent (>= 1): ellipse axis ratio, rod length / width,
        1 for the other shapes.
    angle_rad : float
        In-plane rotation, radians.
    thickness_nm : float
        Maximum projected thickness, nm.
    profile_exponent : float
        Dome exponent for rounded shapes: thickness ``t0 * (1 - q**2) ** exponent``
        (0.5 is a true sphere; smaller is flatter).
    harmonics : ndarray
        For ``irregular``: rows ``(k, amplitude, phase)`` of the radius modulation.
    squareness : float
        Superellipse exponent of cubes (2 = circle, large = sharp square).
    """

    shape: str
    center_y_nm: float
    center_x_nm: float
    radius_nm: float
    aspect: float = 1.0
    angle_rad: float = 0.0
    thickness_nm: float = 1.0
    profile_exponent: float = 0.5
    harmonics: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    squareness: float = 6.0

    @property
    def bounding_radius_nm(self) -> float:
        """Radius of a circle around the centre that contains the whole outline, nm."""
        if self.shape == "irregular":
            return self.radius_nm * (1.0 + float(np.abs(self.harmonics[:, 1]).sum()))
        if self.shape == "cube":
            return self.radius_nm * np.sqrt(2.0)
        return self.radius_nm

    @property
    def equivalent_radius_nm(self) -> float:
        """Radius of the disc with (about) the same projected area, nm."""
        r = self.radius_nm
        if self.shape in ("ellipsoid",):
            return r / np.sqrt(self.aspect)
        if self.shape == "cube":
            return r * 2.0 / np.sqrt(np.pi) * 0.97
        if self.shape == "octahedron":
            return r * np.sqrt(3.0 * np.sqrt(3.0) / (2.0 * np.pi))
        if self.shape == "prism":
            return r * np.sqrt(3.0 * np.sqrt(3.0) / (4.0 * np.pi))
        if self.shape == "rod":
            width = r / self.aspect
            area = np.pi * width**2 + 4.0 * width * max(r - width, 0.0)
            return float(np.sqrt(area / np.pi))
        return r


@dataclass
class RasterizedParticle:
    """A particle evaluated on its bounding-box crop of the image grid.

    Attributes
    ----------
    offset : tuple of int
        ``(row, col)`` of the crop's first pixel in the image; may be negative or reach
        past the image for particles cut by the border (see :meth:`clip`).
    mask : ndarray of bool
        Truth: pixel centre inside the outline.
    thickness_nm : ndarray of float32
        Projected thickness for rendering, nm, anti-aliased at the rim (0 far outside).
    coverage : ndarray of float32
        Anti-aliased area coverage in [0, 1] (rendering only).
    gauge : ndarray of float32
        Normalised shape coordinate, 0 at the centre and 1 on the outline.
    """

    offset: tuple[int, int]
    mask: np.ndarray
    thickness_nm: np.ndarray
    coverage: np.ndarray
    gauge: np.ndarray

    def clip(self, image_shape: tuple[int, int]) -> RasterizedParticle | None:
        """Return the part inside an image of ``image_shape`` px, or None if nothing is left."""
        r0, c0 = self.offset
        h, w = self.mask.shape
        top, left = max(0, -r0), max(0, -c0)
        bottom = min(h, image_shape[0] - r0)
        right = min(w, image_shape[1] - c0)
        if bottom <= top or right <= left:
            return None
        sl = (slice(top, bottom), slice(left, right))
        return RasterizedParticle(
            offset=(r0 + top, c0 + left),
            mask=self.mask[sl],
            thickness_nm=self.thickness_nm[sl],
            coverage=self.coverage[sl],
            gauge=self.gauge[sl],
        )


def _local_grid(
    spec: ParticleSpec, pixel_size_nm: float, margin_px: int
) -> tuple[tuple[int, int], np.ndarray, np.ndarray]:
    """Rotated local coordinates (u along the major axis, v across), nm, on the crop."""
    reach = spec.bounding_radius_nm / pixel_size_nm + margin_px
    cy = spec.center_y_nm / pixel_size_nm
    cx = spec.center_x_nm / pixel_size_nm
    r0, r1 = int(np.floor(cy - reach)), int(np.ceil(cy + reach)) + 1
    c0, c1 = int(np.floor(cx - reach)), int(np.ceil(cx + reach)) + 1
    dy = (np.arange(r0, r1) * pixel_size_nm - spec.center_y_nm)[:, None]
    dx = (np.arange(c0, c1) * pixel_size_nm - spec.center_x_nm)[None, :]
    cos, sin = np.cos(spec.angle_rad), np.sin(spec.angle_rad)
    u = dx * cos + dy * sin
    v = -dx * sin + dy * cos
    return (r0, c0), u, v


def _dome(q: np.ndarray, exponent: float) -> np.ndarray:
    return np.clip(1.0 - q * q, 0.0, None) ** exponent


def _superellipse(
    u: np.ndarray, v: np.ndarray, a: float, b: float, p: float
) -> tuple[np.ndarray, np.ndarray]:
    """Gauge and approximate signed distance (nm) of a superellipse |u/a|^p + |v/b|^p = 1."""
    au = np.abs(u) / a + 1e-12
    av = np.abs(v) / b + 1e-12
    q = (au**p + av**p) ** (1.0 / p)
    # |grad q| = q^(1-p) * sqrt((au^(p-1)/a)^2 + (av^(p-1)/b)^2)
    grad = q ** (1.0 - p) * np.sqrt((au ** (p - 1) / a) ** 2 + (av ** (p - 1) / b) ** 2)
    return q, (q - 1.0) / np.maximum(grad, 1e-12)


def _regular_polygon(
    u: np.ndarray, v: np.ndarray, n_sides: int, circumradius: float
) -> tuple[np.ndarray, np.ndarray]:
    """Gauge and signed distance (nm, exact inside) of a regular polygon."""
    apothem = circumradius * np.cos(np.pi / n_sides)
    angles = 2.0 * np.pi * np.arange(n_sides) / n_sides
    projections = np.stack([u * np.cos(t) + v * np.sin(t) for t in angles])
    support = projections.max(axis=0)
    return support / apothem, support - apothem


def _capsule(
    u: np.ndarray, v: np.ndarray, half_length: float, radius: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gauge, exact signed distance (nm) and axis distance (nm) of a capsule along u."""
    core = max(half_length - radius, 0.0)
    du = np.clip(np.abs(u) - core, 0.0, None)
    dist = np.sqrt(du * du + v * v)
    return dist / radius, dist - radius, dist


def shape_gauge(spec: ParticleSpec, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Evaluate the gauge and signed distance (nm) of ``spec`` at local coordinates (u, v) nm.

    The gauge is 0 at the centre and 1 on the outline; the truth mask is ``gauge <= 1``.
    The signed distance is negative inside and only used for anti-aliased rendering.
    """
    r = spec.radius_nm
    if spec.shape == "sphere":
        rho = np.sqrt(u * u + v * v)
        return rho / r, rho - r
    if spec.shape == "ellipsoid":
        return _superellipse(u, v, r, r / spec.aspect, 2.0)
    if spec.shape == "cube":
        return _superellipse(u, v, r, r, spec.squareness)
    if spec.shape == "octahedron":
        return _regular_polygon(u, v, 6, r)
    if spec.shape == "prism":
        return _regular_polygon(u, v, 3, r)
    if spec.shape == "rod":
        q, sd, _ = _capsule(u, v, r, r / spec.aspect)
        return q, sd
    if spec.shape == "irregular":
        phi = np.arctan2(v, u)
        radius = np.full_like(phi, r)
        for k, amplitude, phase in spec.harmonics:
            radius = radius + r * amplitude * np.cos(k * phi + phase)
        rho = np.sqrt(u * u + v * v)
        return rho / radius, rho - radius
    raise ValueError(f"unknown particle shape {spec.shape!r}; expected one of {sorted(SHAPES)}")


def thickness_profile(spec: ParticleSpec, q: np.ndarray) -> np.ndarray:
    """Projected thickness (nm) as a function of the gauge ``q`` (valid for ``q <= 1``)."""
    t0 = spec.thickness_nm
    if spec.shape in ("sphere", "ellipsoid", "rod", "irregular"):
        return t0 * _dome(q, spec.profile_exponent)
    if spec.shape == "cube":
        return t0 * np.clip((1.0 - q) * 8.0 + 0.35, 0.0, 1.0)
    if spec.shape == "octahedron":
        return t0 * np.clip((1.0 - q) * 2.5 + 0.15, 0.0, 1.0)
    if spec.shape == "prism":
        return np.full_like(q, t0)
    raise ValueError(f"unknown particle shape {spec.shape!r}; expected one of {sorted(SHAPES)}")


def minor_half_extent_nm(spec: ParticleSpec) -> float:
    """Smallest distance from the centre to the outline, nm."""
    if spec.shape in ("ellipsoid", "rod"):
        return spec.radius_nm / spec.aspect
    if spec.shape == "octahedron":
        return spec.radius_nm * np.cos(np.pi / 6)
    if spec.shape == "prism":
        return spec.radius_nm * 0.5
    if spec.shape == "irregular":
        return spec.radius_nm * max(1.0 - float(np.abs(spec.harmonics[:, 1]).sum()), 0.2)
    return spec.radius_nm


def rasterize_particle(spec: ParticleSpec, pixel_size_nm: float) -> RasterizedParticle:
    """Evaluate one particle on its bounding-box crop of the pixel grid.

    Parameters
    ----------
    spec : ParticleSpec
        Geometry in nm.
    pixel_size_nm : float
        Pixel size, nm/px.

    Returns
    -------
    RasterizedParticle
        Crop with offset (not yet clipped to any image).
    """
    offset, u, v = _local_grid(spec, pixel_size_nm, margin_px=2)
    q, sd = shape_gauge(spec, u, v)
    mask = q <= 1.0
    coverage = np.clip(0.5 - sd / pixel_size_nm, 0.0, 1.0)
    # Render thickness: the profile half a pixel inside the rim, spread over the coverage,
    # so that flat shapes get smooth edges; the truth mask is untouched by this.
    q_inner = max(1.0 - 0.5 * pixel_size_nm / max(minor_half_extent_nm(spec), 1e-9), 0.0)
    thickness = thickness_profile(spec, np.minimum(q, q_inner)) * coverage
    return RasterizedParticle(
        offset=offset,
        mask=mask,
        thickness_nm=thickness.astype(np.float32),
        coverage=coverage.astype(np.float32),
        gauge=q.astype(np.float32),
    )
