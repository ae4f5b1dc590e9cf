"""Results people can use: tables (Parquet, csv, xlsx), statistics, figures, an HTML report.

Everything here works on plain pandas DataFrames and numpy arrays (testable alone); the
directory-level entry points read a pipeline results folder and tolerate missing optional
parts (no image store -> no per-image figures, with a note in the report).
"""

from antema_scale.report.html import report_run, write_report
from antema_scale.report.results import ResultsDirectoryError, RunResults, load_results
from antema_scale.report.samples import SampleMappingError, assign_samples, read_sample_mapping
from antema_scale.report.statistics import (
    BootstrapInterval,
    NanomaterialCriterion,
    SummaryStatistics,
    bootstrap_interval,
    nanomaterial_criterion,
    number_percentiles,
    summary_statistics,
)
from antema_scale.report.tables import write_tables, write_workbook

__all__ = [
    "BootstrapInterval",
    "NanomaterialCriterion",
    "ResultsDirectoryError",
    "RunResults",
    "SampleMappingError",
    "SummaryStatistics",
    "assign_samples",
    "bootstrap_interval",
    "load_results",
    "nanomaterial_criterion",
    "number_percentiles",
    "read_sample_mapping",
    "report_run",
    "summary_statistics",
    "write_report",
    "write_tables",
    "write_workbook",
]
