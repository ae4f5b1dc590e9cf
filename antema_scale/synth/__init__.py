"""Synthetic micrographs with exact ground truth, for training, tests and benchmarks.

Main entry points: :class:`SynthConfig`, :func:`generate_micrograph`,
:func:`generate_scene` (pairs / chains / clusters at an exact overlap). Every image is
deterministic bit for bit given its config and seed.
"""

from antema_scale.synth.config import OVERLAP_LEVELS, OverlapSpec, SynthConfig
from antema_scale.synth.micrograph import (
    SyntheticMicrograph,
    generate_micrograph,
    generate_scene,
    render_scene,
)
from antema_scale.synth.shapes import SHAPES, ParticleSpec
from antema_scale.synth.truth import ParticleCrop, feret_diameters, truth_table

__all__ = [
    "OVERLAP_LEVELS",
    "SHAPES",
    "OverlapSpec",
    "ParticleCrop",
    "ParticleSpec",
    "SynthConfig",
    "SyntheticMicrograph",
    "feret_diameters",
    "generate_micrograph",
    "generate_scene",
    "render_scene",
    "truth_table",
]
