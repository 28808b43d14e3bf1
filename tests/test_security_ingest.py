"""Attacks on member loads: colliding sources, a replaced file, a second generate, a killed load, a race.

Each test is a probe from issue 13 (security and data safety) that lost or merged members
on the main of commit c28552a: two files whose names reduce to the same letters shared
member keys, a file in another folder replaced the first one's members, a second
``data generate`` for a date silently replaced the first, a load killed after silver
left dim_patients stale, and two concurrent loads both "succeeded". Real Spark, real
Delta tables, real processes for the kill and the race.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from healthcare_mlops.composition import build_runtime, cli_runtime
from healthcare_mlops.errors import UserError
from healthcare_mlops.failpoints import FAILPOINT_ENV, KILLED_EXIT_CODE
from healthcare_mlops.runtime.delta_catalog import DeltaCatalog
from healthcare_mlops.settings import HOME_ENV, resolve_settings
from healthcare_mlops.spark.patient_load import AFTER_DIM, AFTER_QUARANTINE, AFTER_SILVER
from healthcare_mlops.tables import DATA_QUALITY_QUARANTINE, DIM_PATIENTS, MEMBER_LOADS, SILVER_PATIENTS

AS_OF = dt.date(2025, 3, 1)
HEADER = "age,sex,bmi,children,smoker,region,charges"
RUN = [sys.executable, "-c", "from healthcare_mlops.cli.main import run; run()"]
MEMBER_TABLES = (SILVER_PATIENTS, DATA_QUALITY_QUARANTINE, DIM_PATIENTS)


def write_members(path: Path, first_age: int, count: int, bad_rows: int = 0) -> Path:
    """A CSV of ``count`` distinct valid members (ages from ``first_age``) and ``bad_rows`` malformed lines."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [HEADER] + [f"{first_age + i},female,27.5,0,no,southwest,{1000 + i}.5" for i in range(count)]
    path.write_text("\n".join(lines + ["1,2,3"] * bad_rows) + "\n")
    return path


def table(settings, name: str) -> pd.DataFrame:
    """A table's rows in a stable order, for exact comparison."""
    rows = DeltaCatalog(settings).read_arrow(name).to_pandas()
    key = [c for c in ("source", "source_row", "patient_natural_key", "scd_version", "load_id") if c in rows]
    return rows.sort_values(key).reset_index(drop=True)


def member_tables(settings) -> dict[str, pd.DataFrame]:
    return {name: table(settings, name) for name in MEMBER_TABLES}


def assert_same_tables(settings, expected: dict[str, pd.DataFrame]) -> None:
    for name, rows in expected.items():
        pd.testing.assert_frame_equal(table(settings, name), rows, obj=name)


def cli(home: Path, *args: str, env: dict | None = None) -> subprocess.Popen:
    """Start ``healthcare-mlops --home home ...`` as its own process."""
    environment = {k: v for k, v in os.environ.items() if k not in (HOME_ENV, FAILPOINT_ENV)}
    return subprocess.Popen(RUN + ["--home", str(home), *args], env={**environment, **(env or {})},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


# --- 1. sources never merge or replace each other -------------------------------------------------

@pytest.mark.parametrize("first, second", [("a-b.csv", "a_b.csv"), ("d1/claims.csv", "d2/claims.csv")],
                         ids=["same letters", "same name, other folder"])
def test_two_files_keep_every_member_under_their_own_keys(spark, settings, tmp_path, first, second):
    from healthcare_mlops.tasks.load_members import ingest_csv

    ingest_csv(cli_runtime(settings), write_members(tmp_path / first, 20, 3), AS_OF)
    report = ingest_csv(cli_runtime(settings), write_members(tmp_path / second, 40, 2), AS_OF)

    silver, dim = table(settings, SILVER_PATIENTS), table(settings, DIM_PATIENTS)
    assert len(silver) == 5 and silver["source"].nunique() == 2
    assert sorted(silver["age"]) == [20, 21, 22, 40, 41]
    assert silver["patient_natural_key"].is_unique
    assert len(dim) == 5 and dim["patient_natural_key"].is_unique and dim["is_current_record"].all()
    assert report.current_members == 5


def test_a_changed_file_at_the_same_path_is_refused_without_replace(spark, settings, tmp_path):
    from healthcare_mlops.tasks.load_members import ingest_csv

    path = write_members(tmp_path / "landing" / "members.csv", 20, 3, bad_rows=1)
    ingest_csv(cli_runtime(settings), path, AS_OF)
    before = member_tables(settings)
    ingest_csv(cli_runtime(settings), path, AS_OF)                                    # the same file again: no change
    assert_same_tables(settings, before)

    write_members(path, 50, 2)
    with pytest.raises(UserError, match=r"already loaded for 2025-03-01 with other content .*pass --replace"):
        ingest_csv(cli_runtime(settings), path, AS_OF)
    assert_same_tables(settings, before)

    report = ingest_csv(cli_runtime(settings), path, AS_OF, replace=True)
    silver = table(settings, SILVER_PATIENTS)
    assert (report.rows_in, report.rows_loaded, report.rows_quarantined) == (2, 2, 0)
    assert sorted(silver["age"]) == [50, 51] and table(settings, DATA_QUALITY_QUARANTINE).empty
    assert not set(silver["patient_natural_key"]) & set(before[SILVER_PATIENTS]["patient_natural_key"])


def test_a_second_generate_for_a_date_is_idempotent_or_needs_replace(spark, settings):
    from healthcare_mlops.tasks.load_members import generate_patients

    generate_patients(cli_runtime(settings), 40, 1, AS_OF)
    before = member_tables(settings)
    generate_patients(cli_runtime(settings), 40, 1, AS_OF)
    assert_same_tables(settings, before)
    for other in ({"patients": 40, "seed": 2}, {"patients": 41, "seed": 1}):
        with pytest.raises(UserError, match=r"generator was already loaded .*seed=1 patients=40.*--replace"):
            generate_patients(cli_runtime(settings), other["patients"], other["seed"], AS_OF)
        assert_same_tables(settings, before)

    generate_patients(cli_runtime(settings), 40, 2, AS_OF, replace=True)
    replaced = table(settings, SILVER_PATIENTS)
    assert len(replaced) == 40 and not replaced["ssn"].equals(before[SILVER_PATIENTS]["ssn"])


# --- 2. a load is all or nothing --------------------------------------------------------------------

def assert_consistent(settings) -> None:
    """dim_patients holds exactly silver's members, each once current."""
    silver, dim = table(settings, SILVER_PATIENTS), table(settings, DIM_PATIENTS)
    assert set(dim["patient_natural_key"]) == set(silver["patient_natural_key"])
    assert (dim.groupby("patient_natural_key")["is_current_record"].sum() == 1).all()


@pytest.mark.parametrize("point", [AFTER_SILVER])
def test_a_killed_load_is_rolled_back_before_the_next_load(spark, settings, home, tmp_path, point):
    from healthcare_mlops.tasks.load_members import ingest_csv

    ingest_csv(cli_runtime(settings), write_members(tmp_path / "first.csv", 20, 3, bad_rows=1), AS_OF)
    before = member_tables(settings)
    killed_file = write_members(tmp_path / "killed.csv", 40, 4, bad_rows=2)
    killed = cli(home, "data", "ingest", str(killed_file), "--as-of", AS_OF.isoformat(),
                 env={FAILPOINT_ENV: point})
    _, stderr = killed.communicate(timeout=300)
    assert killed.returncode == KILLED_EXIT_CODE, stderr[-2000:]

    ingest_csv(cli_runtime(settings), write_members(tmp_path / "next.csv", 60, 1), AS_OF)  # the next load heals first
    silver, quarantine = table(settings, SILVER_PATIENTS), table(settings, DATA_QUALITY_QUARANTINE)
    assert str(killed_file.resolve()) not in set(silver["source"]) | set(quarantine["source"])
    assert sorted(silver["age"]) == [20, 21, 22, 60]
    pd.testing.assert_frame_equal(quarantine, before[DATA_QUALITY_QUARANTINE])
    assert_consistent(settings)
    journal = table(settings, MEMBER_LOADS).sort_values("recorded_at")
    killed_events = journal[journal["source"] == str(killed_file.resolve())]["event"].tolist()
    assert killed_events == ["started", "rolled_back"]
    assert journal["event"].tolist()[-2:] == ["started", "committed"]


@pytest.mark.parametrize("first_load", [True, False], ids=["the first load", "after a committed load"])
@pytest.mark.parametrize("point", [AFTER_QUARANTINE, AFTER_SILVER, AFTER_DIM])
def test_a_killed_load_leaves_no_rows_and_no_features(spark, settings, home, tmp_path, point, first_load):
    """Issue 24, item 7: a load killed after the quarantine commit kept its quarantine rows after
    the rollback, and feature_engineering then "succeeded" with 0 features from the killed load."""
    from healthcare_mlops.tasks.load_members import ingest_csv
    from healthcare_mlops.tasks import feature_engineering

    if not first_load:
        ingest_csv(cli_runtime(settings), write_members(tmp_path / "first.csv", 20, 3, bad_rows=1), AS_OF)
    killed_day = AS_OF + dt.timedelta(days=1)
    killed_file = write_members(tmp_path / "killed.csv", 40, 4, bad_rows=2)
    killed = cli(home, "data", "ingest", str(killed_file), "--as-of", killed_day.isoformat(),
                 env={FAILPOINT_ENV: point})
    _, stderr = killed.communicate(timeout=300)
    assert killed.returncode == KILLED_EXIT_CODE, stderr[-2000:]
    for as_of in (killed_day, None):
        with pytest.raises(UserError, match=rf"member load of .*killed.csv as of {killed_day} did not finish"):
            feature_engineering.run(build_runtime(settings), as_of)

    ingest_csv(cli_runtime(settings), write_members(tmp_path / "next.csv", 60, 1), AS_OF)     # heals first
    store = DeltaCatalog(settings)
    for name in (SILVER_PATIENTS, DATA_QUALITY_QUARANTINE, DIM_PATIENTS):
        if store.exists(name):
            rows = table(settings, name)
            assert killed_day not in set(rows.get("as_of_date", [])), name
            assert str(killed_file.resolve()) not in set(rows.get("source", [])), name
    assert sorted(table(settings, SILVER_PATIENTS)["age"]) == ([60] if first_load else [20, 21, 22, 60])
    with pytest.raises(UserError, match=f"no silver_patients load on as-of date {killed_day}"):
        feature_engineering.run(build_runtime(settings), killed_day)
    assert feature_engineering.run(build_runtime(settings), AS_OF)["features"] == (1 if first_load else 4)


def test_identifier_tables_are_readable_by_their_owner_only(spark, settings, tmp_path):
    """Issue 24, item 7: silver_patients, dim_patients and the quarantine were written 0644 under 0755."""
    import stat

    from healthcare_mlops.tasks.load_members import ingest_csv
    from healthcare_mlops.tables import PERSONAL_TABLES

    ingest_csv(cli_runtime(settings), write_members(tmp_path / "first.csv", 20, 3, bad_rows=1), AS_OF)
    ingest_csv(cli_runtime(settings), write_members(tmp_path / "second.csv", 40, 2), AS_OF)  # a second commit to each
    store = DeltaCatalog(settings)
    for name in PERSONAL_TABLES:
        root = store.path(name)
        paths = [root, *root.rglob("*")]
        assert any(p.suffix == ".parquet" for p in paths), name
        modes = {str(p.relative_to(root)): stat.S_IMODE(p.stat().st_mode) for p in paths}
        wrong = {p: oct(m) for p, m in modes.items() if m != (0o700 if (root / p).is_dir() else 0o600)}
        assert not wrong, (name, wrong)


def test_a_load_that_fails_in_process_puts_silver_and_the_quarantine_back(spark, settings, tmp_path):
    """A real failure: dim_patients' folder is a file, so the dimension cannot be written."""
    from healthcare_mlops.tasks.load_members import ingest_csv

    ingest_csv(cli_runtime(settings), write_members(tmp_path / "first.csv", 20, 3, bad_rows=1), AS_OF)
    before = member_tables(settings)
    dim_folder = DeltaCatalog(settings).path(DIM_PATIENTS)
    shutil.move(dim_folder, tmp_path / "dim_aside")
    dim_folder.write_text("not a table")
    with pytest.raises(Exception) as failure:
        ingest_csv(cli_runtime(settings), write_members(tmp_path / "second.csv", 40, 2, bad_rows=1), AS_OF)
    assert not isinstance(failure.value, UserError)                      # the real cause, not swallowed
    for name in (SILVER_PATIENTS, DATA_QUALITY_QUARANTINE):
        pd.testing.assert_frame_equal(table(settings, name), before[name], obj=name)

    dim_folder.unlink()
    shutil.move(tmp_path / "dim_aside", dim_folder)
    ingest_csv(cli_runtime(settings), write_members(tmp_path / "third.csv", 60, 1), AS_OF)
    assert sorted(table(settings, SILVER_PATIENTS)["age"]) == [20, 21, 22, 60]
    assert_consistent(settings)


# --- 4. concurrent loads: one wins, the other is refused -----------------------------------------------

def _wait_for_lock(settings, process: subprocess.Popen, timeout: float = 60.0) -> None:
    """Until ``process`` holds the member tables' load lock (or has ended)."""
    lock = DeltaCatalog(settings).path(SILVER_PATIENTS).parent / f".{SILVER_PATIENTS}.lock"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        if lock.exists() and f"pid {process.pid} " in lock.read_text():
            return
        time.sleep(0.1)


def test_two_concurrent_generates_for_one_date_one_wins_the_other_fails(spark, settings, home, tmp_path):
    from healthcare_mlops.tasks.load_members import generate_patients

    day = ["--patients", "30", "--as-of", AS_OF.isoformat()]
    first = cli(home, "data", "generate", "--seed", "1", *day)
    _wait_for_lock(settings, first)
    second = cli(home, "data", "generate", "--seed", "2", *day)
    (_, first_err), (_, second_err) = first.communicate(timeout=300), second.communicate(timeout=300)

    assert first.returncode == 0, first_err[-2000:]
    assert second.returncode == 1, second_err[-2000:]
    assert second_err.strip().splitlines()[-1].startswith(
        f"error: conflict: {settings.tables.fqn(SILVER_PATIENTS)} is being written by pid {first.pid} ")
    journal = table(settings, MEMBER_LOADS)
    assert journal["fingerprint"].unique().tolist() == ["seed=1 patients=30 scenario=baseline"]

    alone = resolve_settings("local", tmp_path / "alone")                  # the winner's load, on its own
    generate_patients(cli_runtime(alone), 30, 1, AS_OF)
    for name in MEMBER_TABLES:
        pd.testing.assert_frame_equal(table(settings, name), table(alone, name), obj=name)


# --- 3. who loads ------------------------------------------------------------------------------------

def test_a_load_needs_the_operator_role_and_records_who_made_it(spark, settings, tmp_path, monkeypatch):
    from healthcare_mlops.identity import ROLE_ENV, USER_ENV
    from healthcare_mlops.tasks.load_members import LOADED_MEMBERS, generate_patients, ingest_csv

    path = write_members(tmp_path / "members.csv", 20, 3)
    monkeypatch.setenv(USER_ENV, "viewer@example.com")
    for role in ("viewer", "analyst"):                       # this machine's role, as data ingest takes it
        monkeypatch.setenv(ROLE_ENV, role)
        with pytest.raises(UserError, match=rf"load needs the operator role; viewer@example.com has the {role} role"):
            ingest_csv(cli_runtime(settings), path, AS_OF)
        with pytest.raises(UserError, match="load needs the operator role"):
            generate_patients(cli_runtime(settings), 10, 1, AS_OF)
    assert not settings.home.exists()                         # refused before anything was opened

    monkeypatch.setenv(USER_ENV, "ops@example.com")
    monkeypatch.setenv(ROLE_ENV, "operator")
    report = ingest_csv(cli_runtime(settings), path, AS_OF)
    loads = table(settings, MEMBER_LOADS)
    assert list(loads["event"].sort_values()) == ["committed", "started"]
    assert set(loads["loaded_by"]) == {"ops@example.com"} and set(loads["role"]) == {"operator"}
    audit = DeltaCatalog(settings).read_arrow("model_governance_log").to_pandas()
    row = audit[audit["action"] == LOADED_MEMBERS].iloc[0]
    assert (row["actor"], row["role"]) == ("ops@example.com", "operator")
    assert report.source in row["comment"] and "rows in 3 = loaded 3 + quarantined 0" in row["comment"]
