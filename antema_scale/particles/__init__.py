"""Particle analysis: cleaning, convexity, separation (UECS, watershed), measurements.

The public entry point is :func:`analyze_mask`, which turns a binary particle map and a
pixel size (nm/px) into a :class:`ParticleTable` (lengths in nm).
"""

from antema_scale.particles.analyze import AnalysisOptions, analyze_mask
from antema_scale.particles.table import ParticleCrop, ParticleTable

__all__ = ["AnalysisOptions", "ParticleCrop", "ParticleTable", "analyze_mask"]
