"""Signal-propagation diagnostics: measure, compare with mean-field theory, render."""

from .probe import JacobianSpectrum, LayerStats, Report, diagnose
from .render import markdown, plot_reports, report_table, write_report

__all__ = [
    "JacobianSpectrum",
    "LayerStats",
    "Report",
    "diagnose",
    "markdown",
    "plot_reports",
    "report_table",
    "write_report",
]
