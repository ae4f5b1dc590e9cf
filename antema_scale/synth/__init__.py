"""Synthetic micrographs with exact ground truth, for training, tests and benchmarks.

Main entry points: :class:`SynthConfig`, :func:`generate_micrograph`,
:func:`generate_scene` (pairs / chains / clusters at an exact overlap),
:func:`random_config` / :data:`PRESETS` (varied realistic configurations),
:func:`generate_movie` (in-situ movies with particle identities), :func:`write_dataset`,
:func:`write_movie` and :func:`write_demo_sample` (files the readers ingest, plus truth).
Every image is deterministic bit for bit given its config and seed.
"""

from antema_scale.synth.config import OVERLAP_LEVELS, OverlapSpec, SynthConfig
from antema_scale.synth.demo import demo_images, write_demo_sample
from antema_scale.synth.micrograph import (
    SyntheticMicrograph,
    generate_micrograph,
    generate_scene,
    render_scene,
)
from antema_scale.synth.movie import SyntheticMovie, generate_movie
from antema_scale.synth.presets import PRESETS, preset_config, random_config
from antema_scale.synth.shapes import SHAPES, ParticleSpec
from antema_scale.synth.truth import ParticleCrop, feret_diameters, truth_table
from antema_scale.synth.writers import (
    read_particle_crops,
    write_dataset,
    write_micrograph,
    write_movie,
)

__all__ = [
    "OVERLAP_LEVELS",
    "PRESETS",
    "SHAPES",
    "OverlapSpec",
    "ParticleCrop",
    "ParticleSpec",
    "SynthConfig",
    "SyntheticMicrograph",
    "SyntheticMovie",
    "demo_images",
    "feret_diameters",
    "generate_micrograph",
    "generate_movie",
    "generate_scene",
    "preset_config",
    "random_config",
    "read_particle_crops",
    "render_scene",
    "truth_table",
    "write_dataset",
    "write_demo_sample",
    "write_micrograph",
    "write_movie",
]
