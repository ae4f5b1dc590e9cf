"""In-situ movies with exact truth: drift, growth, Ostwald ripening, coalescence, nucleation.

The sample is simulated in its own coordinates (nm) and imaged through a field of view
that drifts over it; the support texture drifts with the sample. Per frame:

1. **growth / Ostwald ripening** — every radius changes by ``growth_nm_per_frame`` plus
   a Lifshitz-Slyozov-Wagner term ``ostwald_rate * r_mean**2 * (1/r_mean - 1/r) / r``
   (nm per frame): particles larger than the mean grow, smaller ones shrink; a particle
   whose radius falls below ``max(0.3 nm, 1 px)`` dissolves (a ``disappearance`` event);
2. **Brownian jitter** of every centre (``jitter_nm`` standard deviation per frame);
3. **coalescence** — neighbours closer than 1.15 times their touching distance approach
   each other (``approach_nm_per_frame``); once they overlap deeper than 30 % (linear
   depth) they merge into one particle of the summed volume at the volume-weighted
   centre, which keeps the id of the larger one (a ``coalescence`` event naming both);
4. **appearance** — ``Poisson(appearance_rate)`` new small particles nucleate at free
   spots (an ``appearance`` event);
5. **drift** of the field of view by ``drift_nm_per_frame`` plus a small random walk.

Truth: ``tracks`` is a long table, one row per particle per frame in which it is visible,
with the persistent ``particle_id`` and every truth column of
:mod:`antema_scale.synth.truth` (masks are measured exactly per frame); ``events`` lists
what happened and when. A particle drifting out of the field simply has no row in those
frames (that is not an event of the sample).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property

import numpy as np
import pandas as pd

from antema_scale.synth.config import SynthConfig
from antema_scale.synth.imaging import ParticleLook, draw_backdrop, draw_looks
from antema_scale.synth.layout import place_particles
from antema_scale.synth.micrograph import SyntheticMicrograph, render_scene
from antema_scale.synth.shapes import ParticleSpec

#: Columns of the movie events table.
MOVIE_EVENT_COLUMNS: tuple[str, ...] = (
    "event",
    "frame",
    "time_s",
    "particle_id",
    "related_particle_ids",
    "cause",
)

_MERGE_DEPTH = 0.3
_APPROACH_RANGE = 1.15


@dataclass
class _Particle:
    spec: ParticleSpec  # centre in sample coordinates, nm
    look: ParticleLook
    born: int


@dataclass
class SyntheticMovie:
    """A synthetic in-situ movie with per-frame exact truth.

    Attributes
    ----------
    micrographs : list of SyntheticMicrograph
        One per frame (image, union mask, per-particle crops, truth with persistent ids).
    frame_interval_s : float
        Time between frames, s.
    drift_nm : ndarray
        ``(n_frames, 2)`` position of the sample relative to the first frame, (y, x) nm.
    events : pandas.DataFrame
        :data:`MOVIE_EVENT_COLUMNS`: ``appearance`` (nucleation), ``disappearance``
        (dissolution) and ``coalescence`` (``related_particle_ids`` = absorbed ids).
    config : SynthConfig
    seed : int
    """

    micrographs: list[SyntheticMicrograph]
    frame_interval_s: float
    drift_nm: np.ndarray
    events: pd.DataFrame
    config: SynthConfig
    seed: int
    parameters: dict[str, float] = field(default_factory=dict)

    @property
    def pixel_size_nm(self) -> float:
        """nm/px."""
        return float(self.config.pixel_size_nm)

    @property
    def n_frames(self) -> int:
        """Number of frames."""
        return len(self.micrographs)

    @property
    def frames(self) -> np.ndarray:
        """``(n_frames, rows, cols)`` float32 image stack."""
        return np.stack([m.image for m in self.micrographs])

    @property
    def masks(self) -> np.ndarray:
        """``(n_frames, rows, cols)`` boolean union masks."""
        return np.stack([m.mask for m in self.micrographs])

    @cached_property
    def tracks(self) -> pd.DataFrame:
        """One row per visible particle per frame: ``frame``, ``time_s``, truth columns,
        and the drift of that frame (``drift_y_nm``, ``drift_x_nm``)."""
        tables = []
        for frame, mic in enumerate(self.micrographs):
            table = mic.truth.copy()
            table.insert(0, "time_s", frame * self.frame_interval_s)
            table.insert(0, "frame", frame)
            table["drift_y_nm"] = self.drift_nm[frame, 0]
            table["drift_x_nm"] = self.drift_nm[frame, 1]
            tables.append(table)
        return pd.concat(tables, ignore_index=True)


def _scaled(spec: ParticleSpec, radius_factor: float) -> ParticleSpec:
    return replace(
        spec,
        radius_nm=spec.radius_nm * radius_factor,
        thickness_nm=spec.thickness_nm * radius_factor,
    )


def _event(
    rows: list[dict[str, object]],
    kind: str,
    frame: int,
    dt: float,
    pid: int,
    related: list[int],
    cause: str,
) -> None:
    rows.append(
        {
            "event": kind,
            "frame": frame,
            "time_s": frame * dt,
            "particle_id": pid,
            "related_particle_ids": ";".join(str(r) for r in related),
            "cause": cause,
        }
    )


def _ripen(
    alive: dict[int, _Particle],
    growth: float,
    ostwald: float,
    r_min: float,
    frame: int,
    dt: float,
    events: list[dict[str, object]],
) -> None:
    """Grow / ripen every particle by one frame; dissolve the ones that vanish."""
    if not alive:
        return
    radii = {pid: p.spec.equivalent_radius_nm for pid, p in alive.items()}
    r_mean = float(np.mean(list(radii.values())))
    for pid in list(alive):
        r = radii[pid]
        dr = growth + ostwald * r_mean**2 * (1.0 / r_mean - 1.0 / r) / r
        new_r = r + dr
        if new_r < r_min:
            del alive[pid]
            _event(events, "disappearance", frame, dt, pid, [], "dissolution")
            continue
        alive[pid].spec = _scaled(alive[pid].spec, new_r / r)


def _coalesce(
    alive: dict[int, _Particle],
    approach: float,
    frame: int,
    dt: float,
    events: list[dict[str, object]],
) -> None:
    """Let close neighbours approach and merge those that overlap deeply."""
    ids = sorted(alive)
    for a_pos, a in enumerate(ids):
        for b in ids[a_pos + 1 :]:
            if a not in alive or b not in alive:
                continue
            pa, pb = alive[a].spec, alive[b].spec
            ra, rb = pa.equivalent_radius_nm, pb.equivalent_radius_nm
            dy, dx = pb.center_y_nm - pa.center_y_nm, pb.center_x_nm - pa.center_x_nm
            d = float(np.hypot(dy, dx))
            if d >= (ra + rb) * _APPROACH_RANGE:
                continue
            if d > 1e-9 and approach > 0:
                step = min(approach, d)
                wa, wb = rb**3 / (ra**3 + rb**3), ra**3 / (ra**3 + rb**3)
                ux, uy = dx / d, dy / d
                alive[a].spec = replace(
                    pa,
                    center_y_nm=pa.center_y_nm + uy * step * wa,
                    center_x_nm=pa.center_x_nm + ux * step * wa,
                )
                alive[b].spec = replace(
                    pb,
                    center_y_nm=pb.center_y_nm - uy * step * wb,
                    center_x_nm=pb.center_x_nm - ux * step * wb,
                )
                d -= step
            if 1.0 - d / (ra + rb) < _MERGE_DEPTH:
                continue
            keep, gone = (a, b) if ra >= rb else (b, a)
            pk, pg = alive[keep].spec, alive[gone].spec
            rk, rg = pk.equivalent_radius_nm, pg.equivalent_radius_nm
            wk, wg = rk**3, rg**3
            merged_r = (wk + wg) ** (1.0 / 3.0)
            merged = replace(
                _scaled(pk, merged_r / rk),
                center_y_nm=(pk.center_y_nm * wk + pg.center_y_nm * wg) / (wk + wg),
                center_x_nm=(pk.center_x_nm * wk + pg.center_x_nm * wg) / (wk + wg),
            )
            alive[keep].spec = merged
            del alive[gone]
            _event(events, "coalescence", frame, dt, keep, [gone], "coalescence")


def generate_movie(
    config: SynthConfig,
    n_frames: int,
    seed: int,
    *,
    drift_nm_per_frame: tuple[float, float] | None = None,
    growth_nm_per_frame: float = 0.0,
    ostwald_rate: float = 0.02,
    approach_nm_per_frame: float | None = None,
    appearance_rate: float = 0.5,
    jitter_nm: float | None = None,
    frame_interval_s: float = 1.0,
) -> SyntheticMovie:
    """Generate an in-situ movie with exact per-frame truth and particle identities.

    Parameters
    ----------
    config : SynthConfig
        Field of view, particles at frame 0, imaging.
    n_frames : int
        Number of frames (>= 1).
    seed : int
        Seed; the same arguments give the same movie bit for bit. The sample's history
        (positions, sizes, events) uses its own random stream, so it does not change when
        only imaging settings change.
    drift_nm_per_frame : (float, float) or None
        Constant stage drift (y, x) in nm per frame; None draws about 0.5 px per frame in
        a random direction.
    growth_nm_per_frame : float
        Radius change of every particle per frame, nm (negative shrinks).
    ostwald_rate : float
        Strength of Ostwald ripening (dimensionless, per frame; 0 switches it off).
    approach_nm_per_frame : float or None
        How fast close neighbours move towards each other, nm per frame (None: 5 % of the
        mean diameter; 0 switches coalescence off).
    appearance_rate : float
        Mean number of particles nucleating per frame.
    jitter_nm : float or None
        Brownian displacement per frame, nm (None: 0.2 px).
    frame_interval_s : float
        Time between frames, s.

    Returns
    -------
    SyntheticMovie
    """
    if n_frames < 1:
        raise ValueError(f"n_frames must be >= 1, got {n_frames}")
    if frame_interval_s <= 0:
        raise ValueError(f"frame_interval_s must be > 0, got {frame_interval_s}")
    # Two independent streams: the sample's history must not depend on imaging noise
    # (Poisson sampling consumes a value-dependent number of draws).
    dynamics_seed, imaging_seed = np.random.SeedSequence(seed).spawn(2)
    rng = np.random.default_rng(dynamics_seed)
    imaging_rng = np.random.default_rng(imaging_seed)
    px = config.pixel_size_nm
    rows, cols = config.shape
    if drift_nm_per_frame is None:
        theta = rng.uniform(0.0, 2.0 * np.pi)
        drift_nm_per_frame = (0.5 * px * np.sin(theta), 0.5 * px * np.cos(theta))
    velocity = np.asarray(drift_nm_per_frame, dtype=float)
    jitter = 0.2 * px if jitter_nm is None else float(jitter_nm)
    approach = (
        0.05 * config.diameter_mean_nm
        if approach_nm_per_frame is None
        else float(approach_nm_per_frame)
    )
    r_min = max(0.3, px)

    drift = np.cumsum(
        np.vstack(
            [
                np.zeros(2),
                np.tile(velocity, (n_frames - 1, 1))
                + rng.normal(0.0, 0.1 * px, size=(n_frames - 1, 2)),
            ]
        ),
        axis=0,
    )
    margin = int(np.ceil(np.abs(drift).max() / px)) + 2
    backdrop = draw_backdrop(config, imaging_rng, (rows + 2 * margin, cols + 2 * margin))

    specs = place_particles(config, rng)
    # Looks come from the dynamics stream (as when seeded movies were first published in
    # tests); draw_looks must keep its number of draws per particle to keep them stable.
    looks = draw_looks(rng, len(specs), config.mode)
    alive = {
        i + 1: _Particle(spec, look, 0)
        for i, (spec, look) in enumerate(zip(specs, looks, strict=True))
    }
    next_id = len(alive) + 1
    events: list[dict[str, object]] = []
    micrographs: list[SyntheticMicrograph] = []
    for frame in range(n_frames):
        if frame > 0:
            _ripen(alive, growth_nm_per_frame, ostwald_rate, r_min, frame, frame_interval_s, events)
            for p in alive.values():
                step = rng.normal(0.0, jitter, size=2)
                p.spec = replace(
                    p.spec,
                    center_y_nm=p.spec.center_y_nm + step[0],
                    center_x_nm=p.spec.center_x_nm + step[1],
                )
            _coalesce(alive, approach, frame, frame_interval_s, events)
            for _ in range(int(rng.poisson(appearance_rate))):
                seedling = place_particles(
                    config.with_(
                        n_particles=1,
                        overlap="none",
                        diameter_mean_nm=max(2.5 * r_min, 0.4 * config.diameter_mean_nm),
                    ),
                    rng,
                )
                if not seedling:
                    continue
                spec = replace(
                    seedling[0],
                    center_y_nm=seedling[0].center_y_nm - drift[frame, 0],
                    center_x_nm=seedling[0].center_x_nm - drift[frame, 1],
                )
                alive[next_id] = _Particle(spec, draw_looks(rng, 1, config.mode)[0], frame)
                _event(events, "appearance", frame, frame_interval_s, next_id, [], "nucleation")
                next_id += 1
        ids = sorted(alive)
        frame_specs = [
            replace(
                alive[i].spec,
                center_y_nm=alive[i].spec.center_y_nm + drift[frame, 0],
                center_x_nm=alive[i].spec.center_x_nm + drift[frame, 1],
            )
            for i in ids
        ]
        shift = np.rint(drift[frame] / px).astype(int)
        window = backdrop.window(margin - int(shift[0]), margin - int(shift[1]), (rows, cols))
        micrographs.append(
            render_scene(
                config,
                frame_specs,
                imaging_rng,
                seed=seed,
                looks=[alive[i].look for i in ids],
                backdrop=window,
                particle_ids=ids,
            )
        )
    return SyntheticMovie(
        micrographs=micrographs,
        frame_interval_s=float(frame_interval_s),
        drift_nm=drift,
        events=pd.DataFrame(events, columns=list(MOVIE_EVENT_COLUMNS)),
        config=config,
        seed=seed,
        parameters={
            "drift_y_nm_per_frame": float(velocity[0]),
            "drift_x_nm_per_frame": float(velocity[1]),
            "growth_nm_per_frame": float(growth_nm_per_frame),
            "ostwald_rate": float(ostwald_rate),
            "approach_nm_per_frame": approach,
            "appearance_rate": float(appearance_rate),
            "jitter_nm": jitter,
        },
    )
