"""The text report of ``governance reproduce``: the outcome first, then each comparison."""

from __future__ import annotations

from healthcare_mlops.governance.reproduce import Reproduction

VALUE_WIDTH = 28


def _cell(text: str) -> str:
    return text if len(text) <= VALUE_WIDTH else text[:VALUE_WIDTH - 3] + "..."


def format_report(report: Reproduction) -> str:
    """A table of what was compared (recorded, reproduced, same?) under a one-line outcome."""
    lines = [f"{report.model_name} version {report.version}: {report.result}",
             f"reproduced at {report.reproduced_at}"]
    lines += [f"note: {note}" for note in report.notes]
    if report.comparisons:
        width = max(len(c.name) for c in report.comparisons)
        lines.append(f"{'compared':{width}}  {'recorded':>{VALUE_WIDTH}}  {'reproduced':>{VALUE_WIDTH}}  same")
        lines += [f"{c.name:{width}}  {_cell(c.recorded):>{VALUE_WIDTH}}  {_cell(c.reproduced):>{VALUE_WIDTH}}  "
                  f"{'yes' if c.same else 'NO'}" for c in report.comparisons]
    if report.differences:
        lines.append("differences:")
        lines += [f"  {c.name}: recorded {c.recorded}, reproduced {c.reproduced}" for c in report.differences]
    return "\n".join(lines)
