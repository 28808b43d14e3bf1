"""``healthcare-mlops`` end to end: real subprocesses on a temporary ``--home``.

The module runs the commands a new user runs: ``info``, ``data generate``, ``data ingest``
and ``sql`` over what they wrote, plus the failures a user meets (bad query, bad file,
unknown target, bad date), each of which must exit non-zero with one ``error: ...`` line.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from healthcare_mlops.cli.main import app
from healthcare_mlops.settings import HOME_ENV
from healthcare_mlops.tables import ALL_TABLES
from test_ingest import CONTENT_KEY

pytestmark = pytest.mark.slow   # most tests start the CLI as a subprocess

RUN = [sys.executable, "-c", "from healthcare_mlops.cli.main import run; run()"]
CONSOLE_SCRIPT = Path(sys.executable).with_name("healthcare-mlops")
AS_OF = "2025-01-01"
PATIENTS = 300
# Columns in another order, header in upper case; line 4 has an invalid region.
CSV_TEXT = ("CHARGES,Region,smoker,children,bmi,sex,AGE\n"
            "16884.924,southwest,yes,0,27.9,female,19\n"
            "1725.5523,southeast,no,1,33.77,male,18\n"
            "4449.462,mars,no,3,33,male,28\n")


def cli(*args: str, home: Path | None = None, env: dict | None = None, timeout: int = 300):
    environment = {k: v for k, v in os.environ.items() if k != HOME_ENV}
    environment.update(env or {})
    command = RUN + (["--home", str(home)] if home is not None else []) + list(args)
    return subprocess.run(command, capture_output=True, text=True, env=environment, timeout=timeout)


def ok(result) -> str:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result.stdout


def fails(result, message: str) -> str:
    """Non-zero exit; the last stderr line is the one-line cause (the JVM may log above it)."""
    assert result.returncode != 0, result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and errors[0] == lines[-1], result.stderr
    assert message in errors[0], errors[0]
    return errors[0]


def sql(home: Path, query: str, fmt: str = "json"):
    """``sql --identifiers`` as an operator: these tests read the load step's identifier tables."""
    out = ok(cli("sql", query, "--format", fmt, "--identifiers", home=home, env={"HEALTHCARE_MLOPS_ROLE": "operator"}))
    return json.loads(out) if fmt == "json" else out


# --- help --------------------------------------------------------------------------------------

def command_paths(command=None, prefix=()) -> list[tuple[str, ...]]:
    command = command or typer.main.get_command(app)
    paths = [prefix]
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        paths += command_paths(sub, prefix + (name,))
    return paths


def test_every_command_has_help():
    paths = command_paths()
    assert {("info",), ("sql",), ("data",), ("data", "generate"), ("data", "ingest")} <= set(paths)
    runner = CliRunner()
    for path in paths:
        result = runner.invoke(app, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        assert "Usage:" in result.output and "--help" in result.output, path


@pytest.mark.parametrize("args", [["--help"], ["data", "generate", "--help"], ["sql", "--help"]])
def test_help_in_a_subprocess(args):
    out = ok(cli(*args))
    assert "Usage:" in out
    if args == ["--help"]:
        assert "--home" in out and "--target" in out and "HEALTHCARE_MLOPS_HOME" in out


def test_console_script_is_installed():
    assert CONSOLE_SCRIPT.exists(), f"{CONSOLE_SCRIPT} missing: install the package into the environment"
    result = subprocess.run([str(CONSOLE_SCRIPT), "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "Usage:" in result.stdout


# --- info ----------------------------------------------------------------------------------------

def test_info_json(tmp_path):
    home = tmp_path / "home"
    info = json.loads(ok(cli("info", "--format", "json", home=home)))
    assert set(info) == {"target", "catalog", "schema", "home", "tracking_uri", "registry_uri", "model_name",
                         "tables"}
    assert (info["target"], info["catalog"], info["schema"]) == ("local", "hc_local", "insurance")
    assert info["home"] == str(home.resolve())
    assert info["model_name"] == "hc_local.insurance.insurance_model"
    assert info["tracking_uri"].startswith("sqlite:///" + str(home.resolve()))
    assert info["registry_uri"] == info["tracking_uri"]
    assert set(info["tables"]) == set(ALL_TABLES)
    for name, location in info["tables"].items():
        assert location == str(home.resolve() / "tables" / "hc_local" / "insurance" / name)
    assert not home.exists(), "info must not create anything"


def test_info_reads_home_from_the_environment(tmp_path):
    home = tmp_path / "from-env"
    info = json.loads(ok(cli("info", "--format", "json", env={HOME_ENV: str(home)})))
    assert info["home"] == str(home.resolve())
    table = ok(cli("info", env={HOME_ENV: str(home)}))
    assert "target: local" in table and "silver_patients:" in table


def test_unknown_target_fails_clearly(tmp_path):
    fails(cli("--target", "nope", "info", home=tmp_path), "error: unknown target 'nope' (known: local, ")


# --- generate, ingest, query ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def lakehouse(tmp_path_factory):
    """A home after ``data generate`` and ``data ingest`` through the command line."""
    root = tmp_path_factory.mktemp("cli")
    home = root / "home"
    generated = ok(cli("data", "generate", "--patients", str(PATIENTS), "--seed", "3", "--as-of", AS_OF,
                       home=home))
    csv_file = root / "members.csv"
    csv_file.write_text(CSV_TEXT, encoding="utf-8")
    ingested = json.loads(ok(cli("data", "ingest", str(csv_file), "--as-of", AS_OF, "--format", "json",
                                 home=home)))
    return home, generated, ingested


def test_generate_prints_its_counts(lakehouse):
    _, generated, _ = lakehouse
    assert f"generator as of {AS_OF}: rows in {PATIENTS} = loaded {PATIENTS} + quarantined 0" in generated
    assert f"dim_patients: {PATIENTS} current members, {PATIENTS} versions" in generated


def test_ingest_reports_its_counts_as_json(lakehouse):
    home, _, report = lakehouse
    assert report == {"source": str((home.parent / "members.csv").resolve()), "as_of_date": AS_OF,
                      "rows_in": 3, "rows_loaded": 2, "rows_quarantined": 1, "current_members": PATIENTS + 2,
                      "dim_versions": PATIENTS + 2}


def test_sql_json_is_an_array_of_objects(lakehouse):
    home, _, _ = lakehouse
    rows = sql(home, "select source, count(*) as n, count(annual_charges) as labelled "
                     "from silver_patients group by source order by source")
    source = str((home.parent / "members.csv").resolve())          # a CSV's source is its resolved path
    by_source = {row.pop("source"): row for row in rows}
    assert by_source[source] == {"n": 2, "labelled": 2} and by_source["generator"]["n"] == PATIENTS
    detail = sql(home, "select patient_natural_key, as_of_date, smoker, bmi, ssn from silver_patients "
                       f"where source = '{source}' order by source_row")
    keys = [row.pop("patient_natural_key") for row in detail]
    assert detail == [{"as_of_date": AS_OF, "smoker": True, "bmi": 27.9, "ssn": None},
                      {"as_of_date": AS_OF, "smoker": False, "bmi": 33.77, "ssn": None}]
    assert all(re.fullmatch(CONTENT_KEY, key) for key in keys) and len(set(keys)) == 2     # keys from values
    assert sql(home, "select * from silver_patients where false") == []


def test_sql_resolves_unqualified_and_qualified_names(lakehouse):
    home, _, _ = lakehouse
    tables = ("silver_patients", "dim_patients", "data_quality_quarantine")
    counts = ", ".join(f"(select count(*) from {t}) as {t}, (select count(*) from hc_local.insurance.{t}) as q_{t}"
                       for t in tables)
    [row] = sql(home, f"select {counts}")
    assert row == {"silver_patients": PATIENTS + 2, "q_silver_patients": PATIENTS + 2,
                   "dim_patients": PATIENTS + 2, "q_dim_patients": PATIENTS + 2,
                   "data_quality_quarantine": 1, "q_data_quality_quarantine": 1}


def test_sql_csv_and_table_formats(lakehouse):
    home, _, _ = lakehouse
    out = sql(home, "select source_row, column_name, reason from data_quality_quarantine", fmt="csv")
    assert list(csv.reader(io.StringIO(out))) == [
        ["source_row", "column_name", "reason"],
        ["4", "region", "'mars' is not one of northeast, northwest, southeast, southwest"]]
    table = sql(home, "select count(*) as members from dim_patients", fmt="table")
    assert table.split() == ["members", str(PATIENTS + 2)]


def test_sql_bad_query_fails_with_one_line(lakehouse):
    home, _, _ = lakehouse
    fails(cli("sql", "selec * from silver_patients", home=home), "error: query failed: ")
    fails(cli("sql", "select * from no_such_table", home=home), "no_such_table")


def test_sql_before_any_data(tmp_path):
    fails(cli("sql", "select count(*) from silver_patients", home=tmp_path / "empty"), "error: query failed: ")


def test_ingest_bad_file_fails_with_one_line(tmp_path):
    home = tmp_path / "home"
    fails(cli("data", "ingest", str(tmp_path / "missing.csv"), home=home), "missing.csv: file not found")
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("age;sex;bmi;children;smoker;region;charges\n19;female;27.9;0;yes;southwest;1\n")
    fails(cli("data", "ingest", str(wrong), home=home), "the delimiter is ';', expected a comma")
    assert not home.exists()


def test_bad_options_fail_with_one_line(tmp_path):
    home = tmp_path / "home"
    fails(cli("data", "generate", "--patients", "10", "--as-of", "2025-13-01", home=home),
          "error: --as-of must be YYYY-MM-DD, not '2025-13-01'")
    fails(cli("data", "generate", "--patients", "10", "--scenario", "nope", home=home),
          "error: unknown scenario 'nope'")
    assert not home.exists()


def test_scenarios_are_listed():
    out = ok(cli("data", "scenarios"))
    for name in ("baseline", "smoker_surge", "aging", "region_shift", "bmi_drift", "cost_inflation", "low_volume"):
        assert name in out


def test_the_demo_refuses_a_workspace_target_without_asking_the_workspace(tmp_path):
    """The refusal needs no model name: no credentials, no workspace call, just what to do instead."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATABRICKS_")}
    result = subprocess.run([*RUN, "--home", str(tmp_path), "--target", "dev", "demo"], capture_output=True,
                            text=True, timeout=120, env=env)
    assert result.returncode == 1
    assert "the demo runs on this machine (target local)" in result.stderr
    assert "credentials" not in result.stderr
