"""Reproducible benchmarks: throughput across hardware, strong scaling, accuracy side by side.

- :mod:`~antema_scale.benchmark.dataset` -- the synthetic benchmark images (sizes, counts);
- :mod:`~antema_scale.benchmark.speed` -- per-stage serial loop, Dask pipeline runs (cold
  start, steady state, peak memory per worker), strong scaling, separation vs the
  full-frame reference port;
- :mod:`~antema_scale.benchmark.accuracy` -- segmenters x separation modes on synthetic
  truth (low/medium/high overlap) and held-out EMPS images;
- :mod:`~antema_scale.benchmark.report` -- the JSON record (with the hardware/software
  fingerprint) and its markdown;
- :mod:`~antema_scale.benchmark.runner` -- :class:`BenchConfig` and :func:`run_benchmark`
  (what ``antema-scale bench`` runs).
"""

from antema_scale.benchmark.report import read_records, record_markdown, write_record
from antema_scale.benchmark.runner import BenchConfig, run_benchmark

__all__ = ["BenchConfig", "read_records", "record_markdown", "run_benchmark", "write_record"]
