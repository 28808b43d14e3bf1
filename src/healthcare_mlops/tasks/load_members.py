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
(without it such a load is refused: see ``spark/patient_load.py``). ``--member_id_column``
names a CSV's member-id column (default: the bundle variable ``member_id_column``).

This module is the loads' shell: it checks the role (``load``: operator and above, or the job
itself), opens the catalog, takes its lock before Spark starts (so a second load fails in a
second, not after its JVM has started), stages the file, runs the core
(``spark/patient_load.py``) and writes the audit row naming who loaded what. A CSV on a laptop
is judged in DuckDB over Arrow instead of Spark (``runtime/arrow_member_load.py``; which one
runs: ``runtime/catalog.arrow_member_load``), with the same journal and writes.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from healthcare_mlops.data.scenarios import get_scenario
from healthcare_mlops.data.csv_source import CHUNK_ROWS, DEFAULT_MEMBER_ID_COLUMN, staged_insurance_csv
from healthcare_mlops.data.load_journal import Load
from healthcare_mlops.dates import parse_optional_date, today_utc
from healthcare_mlops.errors import UserError
from healthcare_mlops.composition import Runtime

LOADED_MEMBERS = "loaded members"     # the audit action of a member load (model_governance_log)

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
        return {"source": source, "as_of": as_of, "path": path, "replace": replace,
                "member_id_column": str(params.get("member_id_column") or "").strip() or None}
    return {"source": source, "as_of": as_of, "replace": replace, "patients": _whole_number(params, "patients", 1),
            "seed": _whole_number(params, "seed", 0),
            "scenario": str(params.get("scenario") or DEFAULT_SCENARIO)}


def member_id_column(settings, override: str | None = None) -> str:
    """The member-id column's name: the caller's, else the bundle variable ``member_id_column``."""
    return (override or str(settings.variables.get("member_id_column") or "") or DEFAULT_MEMBER_ID_COLUMN).strip()


def _member_keys(runtime: Runtime, id_column: str, member_ids: bool):
    """How the file's members are keyed; the hash's secret is read only for a file with ids (on a
    workspace too, though Spark reads it again by its reference: a missing secret stops the load here,
    with the commands that create it)."""
    from healthcare_mlops.spark.patient_load import MemberKeys

    if not member_ids:
        return MemberKeys(id_column=id_column, secret="")
    return MemberKeys(id_column=id_column, secret=runtime.member_key_secret(),
                      secret_reference=runtime.member_key_reference())


def _load(runtime: Runtime, load: Load, replace: bool, frames, rows_read: int | None = None, steps=None):
    """Holding the lock: run the load (in Spark unless ``steps`` are Arrow's), record who made it;
    the ``LoadReport``."""
    from healthcare_mlops.spark.patient_load import run_load
    from healthcare_mlops.tables import SILVER_PATIENTS

    catalog = runtime.spark_catalog if steps is None else runtime.catalog
    with catalog.exclusive(SILVER_PATIENTS, f"loading {load.source} as of {load.as_of_date.isoformat()}"):
        spark = runtime.spark if steps is None else None
        report = run_load(catalog, load, replace, lambda: frames(spark, catalog), rows_read,
                          **({} if steps is None else {"steps": steps}))
    runtime.audit_log.record_action(runtime.identity, LOADED_MEMBERS,
                                    f"{report.source} as of {report.as_of_date} (load {load.load_id}): rows in "
                                    f"{report.rows_in} = loaded {report.rows_loaded} + quarantined "
                                    f"{report.rows_quarantined}")
    return report


def generate_patients(runtime: Runtime, patients: int, seed: int, as_of: dt.date, scenario: str = "baseline",
                      replace: bool = False):
    """Generate one as-of date's member load (first load: the population) and store it, on behalf
    of ``runtime.identity`` (who must hold the ``load`` right)."""
    from healthcare_mlops.spark.generator import GENERATOR_SOURCE
    from healthcare_mlops.spark.patient_load import generated_frames

    identity = runtime.identity
    identity.require("load")
    get_scenario(scenario)                 # an unknown name fails before any lock, table or Spark
    fingerprint = f"seed={seed} patients={patients} scenario={scenario}"
    load = Load.new(GENERATOR_SOURCE, "generate", as_of, fingerprint, identity.user, identity.role)
    return _load(runtime, load, replace,
                 lambda spark, catalog: generated_frames(spark, catalog, patients, seed, as_of, scenario))


def ingest_csv(runtime: Runtime, path: str | Path, as_of: dt.date, replace: bool = False,
               chunk_rows: int = CHUNK_ROWS, id_column: str | None = None):
    """Load a CSV in the public insurance-charges format (with an optional member-id column), on
    behalf of ``runtime.identity`` (who must hold the ``load`` right): in Arrow and DuckDB on a
    laptop, in Spark on Databricks (``Runtime.member_load_in_arrow``)."""
    from healthcare_mlops.spark.patient_load import ingest_frames

    settings, identity = runtime.settings, runtime.identity
    identity.require("load")
    id_column = member_id_column(settings, id_column)
    with staged_insurance_csv(path, settings.staging_dir(Path(path)), chunk_rows, id_column) as staged:
        load = Load.new(str(staged.path), "ingest", as_of, f"sha256:{staged.fingerprint}", identity.user,
                        identity.role)
        keys = _member_keys(runtime, id_column, staged.member_ids)
        if runtime.member_load_in_arrow:
            from healthcare_mlops.runtime.arrow_member_load import ARROW_STEPS, ingest_tables

            return _load(runtime, load, replace,
                         lambda _spark, catalog: ingest_tables(catalog, staged, as_of, keys), staged.rows, ARROW_STEPS)
        return _load(runtime, load, replace,
                     lambda spark, catalog: ingest_frames(spark, catalog, staged, as_of, keys), staged.rows)


def run(runtime: Runtime, params: dict):
    """Load the members ``params`` describe as the job; the ``LoadReport`` (rows in = loaded + quarantined)."""
    loading = plan(params)
    if loading["source"] == "csv":
        report = ingest_csv(runtime, loading["path"], loading["as_of"], loading["replace"],
                            id_column=loading["member_id_column"])
    else:
        report = generate_patients(runtime, loading["patients"], loading["seed"], loading["as_of"],
                                   loading["scenario"], loading["replace"])
    print(f"load_members ({report.source}) as of {report.as_of_date}: rows in {report.rows_in} = "
          f"loaded {report.rows_loaded} + quarantined {report.rows_quarantined}; dim_patients "
          f"{report.current_members} current members")
    return report
