"""In-situ movies: per-frame summaries, particle tracking, events and time series.

All functions work on pandas tables with one row per particle per frame (the pipeline's
particle table with ``frame`` and ``time_s`` columns), in nm and seconds.
"""

from antema_scale.insitu.drift import drift_from_images, drift_from_links
from antema_scale.insitu.events import EVENT_COLUMNS, coalescence_scores, detect_events
from antema_scale.insitu.frames import (
    FRAME_SUMMARY_COLUMNS,
    MovieTableError,
    frame_summaries,
    frame_times,
    with_frame_times,
)
from antema_scale.insitu.results import (
    TrackingInputError,
    TrackingResult,
    track_movies,
    track_results,
    write_tracking_outputs,
)
from antema_scale.insitu.tracking import (
    GROWTH_COLUMNS,
    TRACK_COLUMNS,
    CrowdedLinkingError,
    default_search_range_nm,
    growth_rates,
    track_particles,
    tracking_scores,
)

__all__ = [
    "CrowdedLinkingError",
    "EVENT_COLUMNS",
    "FRAME_SUMMARY_COLUMNS",
    "GROWTH_COLUMNS",
    "MovieTableError",
    "TRACK_COLUMNS",
    "TrackingInputError",
    "TrackingResult",
    "coalescence_scores",
    "default_search_range_nm",
    "detect_events",
    "drift_from_images",
    "drift_from_links",
    "frame_summaries",
    "frame_times",
    "growth_rates",
    "track_movies",
    "track_particles",
    "track_results",
    "tracking_scores",
    "with_frame_times",
    "write_tracking_outputs",
]
