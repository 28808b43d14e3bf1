"""The load_members task: put one as-of date's members into silver_patients and dim_patients.

Nothing else creates the pipeline's source tables on a workspace, so this job runs before
the first ``ml_training_pipeline``. Two sources, the same two functions that
``healthcare-mlops data ingest`` and ``data generate`` call, so validation, quarantine
and SCD2 are identical on a laptop and on a cluster:

- ``csv``: a file in the public insurance-charges format, e.g. in a Unity Catalog volume
  (``/Volumes/<catalog>/<schema>/landing/insurance.csv``), read through the volume's
  file path;
- ``synthetic``: the project's generator, running on the cluster (a demo workspace).

``--replace true`` replaces a load of the same source and date made from other content
(without it such a load is refused: see ``spark/patient_load.py``).
"""

from __future__ import annotations

from healthcare_mlops.dates import parse_optional_date, today_utc
from healthcare_mlops.errors import UserError
from healthcare_mlops.composition import Runtime

SOURCES = ("csv", "synthetic")
DEFAULT_SCENARIO = "baseline"


def _whole_number(params: dict, name: str, minimum: int) -> int:
    """A task parameter that must be an integer of at least ``minimum`` (they arrive as text)."""
    raw = str(params.get(name) or "").strip()
    try:
        value = int(raw)
    except ValueError:
        raise UserError(f"--{name} must be a whole number, not '{raw}'") from None
    if value < minimum:
        raise UserError(f"--{name} must be at least {minimum}, not {value}")
    return value


def _flag(params: dict, name: str) -> bool:
    """A true/false task parameter (empty: false)."""
    raw = str(params.get(name) or "").strip().lower()
    if raw not in ("", "true", "false"):
        raise UserError(f"--{name} must be true or false, not '{raw}'")
    return raw == "true"


def plan(params: dict) -> dict:
    """What ``run`` will load, checked before any Spark work: source, date and its options."""
    source = str(params.get("source") or "").strip().lower()
    if source not in SOURCES:
        raise UserError(f"--source must be one of {', '.join(SOURCES)}, not '{source}'")
    as_of = parse_optional_date(params.get("as_of"), "as-of date") or today_utc()
    replace = _flag(params, "replace")
    if source == "csv":
        path = str(params.get("path") or "").strip()
        if not path:
            raise UserError("--source csv needs --path (the CSV file, e.g. in a Unity Catalog volume)")
        return {"source": source, "as_of": as_of, "path": path, "replace": replace}
    return {"source": source, "as_of": as_of, "replace": replace, "patients": _whole_number(params, "patients", 1),
            "seed": _whole_number(params, "seed", 0),
            "scenario": str(params.get("scenario") or DEFAULT_SCENARIO)}


def run(runtime: Runtime, params: dict):
    """Load the members ``params`` describe; return the ``LoadReport`` (rows in = loaded + quarantined)."""
    from healthcare_mlops.spark.patient_load import generate_patients, ingest_csv

    loading = plan(params)
    if loading["source"] == "csv":
        report = ingest_csv(runtime.settings, loading["path"], loading["as_of"], loading["replace"])
    else:
        report = generate_patients(runtime.settings, loading["patients"], loading["seed"], loading["as_of"],
                                   loading["scenario"], loading["replace"])
    print(f"load_members ({report.source}) as of {report.as_of_date}: rows in {report.rows_in} = "
          f"loaded {report.rows_loaded} + quarantined {report.rows_quarantined}; dim_patients "
          f"{report.current_members} current members")
    return report
