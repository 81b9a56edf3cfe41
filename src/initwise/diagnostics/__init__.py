"""Signal-propagation diagnostics: measure, compare with mean-field theory, render."""

from .coord import CoordCheck, coord_check
from .probe import JacobianSpectrum, LayerStats, Report, diagnose
from .render import markdown, plot_reports, report_table, write_report

__all__ = [
    "CoordCheck",
    "JacobianSpectrum",
    "LayerStats",
    "Report",
    "coord_check",
    "diagnose",
    "markdown",
    "plot_reports",
    "report_table",
    "write_report",
]
