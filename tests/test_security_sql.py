"""Attacks on the read-only SQL path (issue 13): `healthcare-mlops sql`, the console's engines.

Each probe is what an attacker or a careless operator typed on the old main, where it wrote
files, read /etc/passwd, created databases, emptied silver_patients through its Delta log or
tried to download an extension. Now only one SELECT / WITH / DESCRIBE / SHOW statement runs,
decided by the engine's own parser, in a DuckDB session with external access off (exactly the
exposed tables' Parquet files allowed) and its configuration locked; the tables with direct
identifiers are absent unless asked for by a role allowed ``read_identifiers``.

The local probes go through the real CLI entry point (``run()``: exit code and the one
``error:`` line) over real Delta tables. The warehouse probes run the real
databricks-sql-connector ``Cursor`` against a recording backend: the backend is the workspace
boundary, so a refusal must leave it untouched and an accepted query must reach it as the
connector builds it (the statement text and native named parameters).
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable

REPO = Path(__file__).resolve().parents[1]

from healthcare_mlops import tables as T
from healthcare_mlops.cli.main import run
from healthcare_mlops.errors import UserError
from healthcare_mlops.runtime.delta_catalog import DeltaCatalog
from healthcare_mlops.settings import HOME_ENV, resolve_settings

DAY = dt.date(2026, 1, 1)
# The tables with direct identifiers that issue 13 names (the code's list is tables.PERSONAL_TABLES).
IDENTIFIER_TABLES = (T.SILVER_PATIENTS, T.DIM_PATIENTS, T.DATA_QUALITY_QUARANTINE)
SSNS = ["123-45-6789", "987-65-4321"]


@pytest.fixture(scope="module")
def lakehouse(tmp_path_factory) -> Path:
    """Two members in the identifier tables and a partitioned console table, as real Delta tables."""
    home = tmp_path_factory.mktemp("security_sql") / "lakehouse"
    store = DeltaCatalog(resolve_settings("local", home))
    members = {"patient_natural_key": ["GEN-1", "GEN-2"], "first_name": ["Ada", "Bo"], "ssn": SSNS,
               "as_of_date": [DAY, DAY]}
    store.write(pa.table(members), T.SILVER_PATIENTS, partition_by=["as_of_date"])
    store.write(pa.table(members), T.DIM_PATIENTS)
    store.write(pa.table({"source_row": [4], "raw_record": ["Cy,555-12-3456"], "as_of_date": [DAY]}),
                T.DATA_QUALITY_QUARANTINE, partition_by=["as_of_date"])
    store.write(pa.table({"patient_natural_key": ["h1", "h2"], "risk_score": [10.0, 97.0],
                          "scoring_date": [DAY, DAY]}), T.ML_PATIENT_PREDICTIONS, partition_by=["scoring_date"])
    return home


def cli(capsys, monkeypatch, home: Path, *args: str, role: str = "viewer") -> tuple[int, str, str]:
    """``healthcare-mlops --home HOME ARGS`` through the real entry point: (exit code, stdout, stderr)."""
    monkeypatch.setenv("HEALTHCARE_MLOPS_ROLE", role)
    monkeypatch.delenv(HOME_ENV, raising=False)
    monkeypatch.setattr(sys, "argv", ["healthcare-mlops", "--home", str(home), *args])
    capsys.readouterr()
    try:
        run()
        code = 0
    except SystemExit as exit_:
        code = exit_.code or 0
    out = capsys.readouterr()
    return code, out.out, out.err


def refused(result, message: str) -> str:
    """Non-zero exit and exactly one ``error:`` line that says ``message``."""
    code, out, err = result
    lines = [line for line in err.splitlines() if line.strip()]
    assert code != 0, out
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], err
    return lines[0]


def table_state(home: Path, name: str):
    table = DeltaTable(str(Path(resolve_settings("local", home).table_location(name))))
    return table.version(), sorted(table.to_pyarrow_table().to_pylist(), key=str)


# -- statements that are not one read: refused before anything runs ---------------------------------
@pytest.mark.parametrize("statement, kind", [
    ("INSTALL httpfs", "LOAD"),
    ("LOAD httpfs", "LOAD"),
    ("SET enable_external_access = true", "SET"),
    ("SET threads = 1", "SET"),
    ("RESET lock_configuration", "SET"),
    ("PRAGMA version", "PRAGMA"),
    ("CALL pragma_version()", "CALL"),
    ("CREATE TABLE t AS SELECT 1", "CREATE"),
    ("CREATE OR REPLACE VIEW ml_patient_predictions AS SELECT 1 AS x", "CREATE"),
    ("INSERT INTO ml_patient_predictions VALUES ('h3', 1.0, DATE '2026-01-01')", "INSERT"),
    ("UPDATE ml_patient_predictions SET risk_score = 0", "UPDATE"),
    ("DELETE FROM ml_patient_predictions", "DELETE"),
    ("DROP VIEW ml_patient_predictions", "DROP"),
    ("EXPLAIN ANALYZE SELECT 1", "EXPLAIN"),
    ("select 1; drop view ml_patient_predictions", "2 statements (SELECT, DROP)"),
    ("UPDATE EXTENSIONS", "not a statement DuckDB classifies as a read"),
])
def test_only_one_read_statement_runs(lakehouse, capsys, monkeypatch, statement, kind):
    line = refused(cli(capsys, monkeypatch, lakehouse, "sql", statement), "error: read-only: ")
    assert kind in line
    code, out, _ = cli(capsys, monkeypatch, lakehouse, "sql", "select count(*) AS n from ml_patient_predictions",
                       "--format", "csv")
    assert (code, out.split()) == (0, ["n", "2"])       # the view is still there, unchanged


def test_copy_of_the_identifier_tables_writes_no_file(lakehouse, tmp_path, capsys, monkeypatch):
    target = tmp_path / "x.csv"
    for role_args in ((), ("--identifiers",)):
        refused(cli(capsys, monkeypatch, lakehouse, "sql", f"COPY (select * from silver_patients) TO '{target}'",
                    *role_args, role="approver"), "error: read-only: COPY statement refused")
    refused(cli(capsys, monkeypatch, lakehouse, "sql", f"EXPLAIN ANALYZE COPY (select 1) TO '{target}'"),
            "error: read-only: EXPLAIN statement refused")
    refused(cli(capsys, monkeypatch, lakehouse, "sql", f"COPY (select 1) TO '{target}'; select 1"),
            "error: read-only: 2 statements")
    assert not target.exists()


def emptying_commit(home: Path, name: str) -> tuple[Path, str]:
    """The table's next Delta commit file, and a COPY that writes it as a remove of every data file."""
    table = DeltaTable(str(Path(resolve_settings("local", home).table_location(name))))
    paths = [action["path"] for action in pa.table(table.get_add_actions(flatten=True)).to_pylist()]
    commit = Path(table.table_uri.removeprefix("file://")) / "_delta_log" / f"{table.version() + 1:020d}.json"
    removes = " UNION ALL ".join(f"SELECT {{'path': '{p}', 'deletionTimestamp': 0, 'dataChange': true}} AS remove"
                                 for p in paths)
    return commit, f"COPY ({removes}) TO '{commit}' (FORMAT json)"


@pytest.mark.parametrize("table, args", [(T.ML_PATIENT_PREDICTIONS, ()), (T.SILVER_PATIENTS, ("--identifiers",))])
def test_copy_into_a_tables_delta_log_leaves_the_table_unchanged(lakehouse, capsys, monkeypatch, table, args):
    before = table_state(lakehouse, table)
    commit, attack = emptying_commit(lakehouse, table)
    result = cli(capsys, monkeypatch, lakehouse, "sql", attack, *args, role="operator")
    assert table_state(lakehouse, table) == before
    assert not commit.exists()
    refused(result, "error: read-only: COPY statement refused")


def test_attach_creates_no_database_file(lakehouse, tmp_path, capsys, monkeypatch):
    target = tmp_path / "x.db"
    refused(cli(capsys, monkeypatch, lakehouse, "sql", f"ATTACH '{target}' AS x"),
            "error: read-only: ATTACH statement refused")
    assert not target.exists()


# -- a read of anything but the session's tables: DuckDB itself refuses -----------------------------
def test_files_outside_the_tables_cannot_be_read(lakehouse, tmp_path, capsys, monkeypatch):
    outside = tmp_path / "outside.parquet"
    pq.write_table(pa.table({"secret": ["s3cr3t"]}), outside)
    silver = Path(resolve_settings("local", lakehouse).table_location(T.SILVER_PATIENTS))
    silver_file = next(silver.rglob("*.parquet"))
    for probe in ("select * from read_csv('/etc/passwd')", "select * from read_text('/etc/passwd')",
                  "select * from read_blob('/etc/hostname')", f"select * from read_parquet('{outside}')",
                  f"select * from '{outside}'", "select * from glob('/etc/*')",
                  # the identifier table's own files are outside a session that does not hold it
                  f"select * from read_parquet('{silver_file}')",
                  f"select * from read_parquet('{silver}/**/*.parquet')"):
        line = refused(cli(capsys, monkeypatch, lakehouse, "sql", probe), "error: query failed: ")
        assert "Permission Error" in line, line


@pytest.mark.parametrize("target", ["tables", "etc"])
def test_a_tmp_symlink_in_the_working_directory_is_no_side_door(lakehouse, tmp_path, capsys, monkeypatch, target):
    """Issue 24, item 2: DuckDB allows its temp directory (``.tmp`` in the working directory, through
    symlinks) whatever ``allowed_paths`` says; linked to the tables' folder a viewer read names and
    SSNs, linked to /etc the passwd file. The session spills nowhere, so it allows no such folder."""
    tables = Path(resolve_settings("local", lakehouse).table_location(T.SILVER_PATIENTS)).parent
    (tmp_path / ".tmp").symlink_to(tables if target == "tables" else Path("/etc"))
    monkeypatch.chdir(tmp_path)
    probe = (f"select first_name, ssn from read_parquet('.tmp/{T.SILVER_PATIENTS}/**/*.parquet')"
             if target == "tables" else "select * from read_csv('.tmp/passwd')")
    line = refused(cli(capsys, monkeypatch, lakehouse, "sql", probe), "error: query failed: ")
    assert "Permission Error" in line and not any(ssn in line for ssn in SSNS), line
    code, out, err = cli(capsys, monkeypatch, lakehouse, "sql", "select count(*) as n from ml_patient_predictions",
                         "--format", "csv")
    assert code == 0 and out.split() == ["n", "2"], err


def test_the_session_is_locked_with_external_access_off(lakehouse, tmp_path):
    """Under the statement rule: the connection itself refuses file access and configuration changes."""
    from healthcare_mlops.runtime.sql_engine import sql_engine

    engine = sql_engine(resolve_settings("local", lakehouse))
    connection = engine.connect()
    try:
        assert connection.execute("select current_setting('enable_external_access'), "
                                  "current_setting('lock_configuration')").fetchone() == (False, True)
        with pytest.raises(duckdb.Error, match="locked"):
            connection.execute("SET enable_external_access = true")
        with pytest.raises(duckdb.Error, match="locked"):
            connection.execute("SET allowed_directories = ['/']")
        with pytest.raises(duckdb.PermissionException):
            connection.execute(f"COPY (select 1) TO '{tmp_path / 'y.csv'}'")
        with pytest.raises(duckdb.PermissionException):
            connection.execute("INSTALL httpfs")
        assert connection.execute("select count(*) from ml_patient_predictions").fetchone() == (2,)
        assert engine.native == {T.ML_PATIENT_PREDICTIONS}      # DuckDB's own Parquet reader, allowed file by file
    finally:
        connection.close()
    assert not (tmp_path / "y.csv").exists()


def test_reads_that_stay_allowed(lakehouse, capsys, monkeypatch):
    for statement, expected in (
            ("with s as (select max(risk_score) as m from ml_patient_predictions) select m from s", "97.0"),
            ("describe ml_patient_predictions", "risk_score"),
            ("show tables", "ml_patient_predictions"),
            ("summarize ml_patient_predictions", "risk_score"),
            ("from hc_local.insurance.ml_patient_predictions select count(*)", "2")):
        code, out, err = cli(capsys, monkeypatch, lakehouse, "sql", statement, "--format", "csv")
        assert code == 0 and expected in out, err
    code, out, _ = cli(capsys, monkeypatch, lakehouse, "sql", "show tables", "--format", "csv")
    assert not set(IDENTIFIER_TABLES) & set(out.split())


# -- the identifier tables ------------------------------------------------------------------------
@pytest.mark.parametrize("table", IDENTIFIER_TABLES)
def test_identifier_tables_are_absent_without_asking(lakehouse, capsys, monkeypatch, table):
    line = refused(cli(capsys, monkeypatch, lakehouse, "sql", f"select * from {table}", role="approver"),
                   "error: query failed: ")
    assert f"{table} holds direct identifiers" in line and "--identifiers" in line


def test_asking_for_identifiers_needs_a_role_allowed_to_read_them(lakehouse, capsys, monkeypatch):
    refused(cli(capsys, monkeypatch, lakehouse, "sql", "select ssn from silver_patients", "--identifiers",
                role="viewer"), "read_identifiers needs the operator role")
    code, out, err = cli(capsys, monkeypatch, lakehouse, "sql", "select ssn from silver_patients order by 1",
                         "--identifiers", "--format", "csv", role="operator")
    assert code == 0 and out.split() == ["ssn", *SSNS], err


def test_the_console_engine_holds_only_its_tables_locked_and_native(lakehouse, tmp_path):
    from healthcare_mlops.runtime.console_sql import LocalConsoleEngine

    engine = LocalConsoleEngine(resolve_settings("local", lakehouse))
    assert engine.native == {T.ML_PATIENT_PREDICTIONS}
    assert engine.arrow("select count(*) as n from ml_patient_predictions where risk_score > :floor",
                        {"floor": 50}).to_pylist() == [{"n": 1}]
    for statement in (f"COPY (select 1) TO '{tmp_path / 'z.csv'}'", "SET enable_external_access = true",
                      "select 1; select 2"):
        with pytest.raises(UserError, match="^read-only: "):
            engine.arrow(statement, {})
    for table in IDENTIFIER_TABLES:
        with pytest.raises(UserError, match="does not exist"):
            engine.arrow(f"select * from {table}", {})
    with pytest.raises(UserError, match="Permission Error"):
        engine.arrow("select * from read_csv('/etc/passwd')", {})
    assert not (tmp_path / "z.csv").exists()


# -- the SQL warehouse: the same rule in front of databricks-sql-connector ---------------------------
class RecordingBackend:
    """The workspace boundary under the real connector ``Cursor``: records what would be sent."""

    def __init__(self):
        self.sent: list[dict] = []

    def execute_command(self, **request):
        self.sent.append(request)
        return WarehouseResult()


class WarehouseResult:
    description = [("n", "int", None, None, None, None, True)]
    is_staging_operation = False
    num_modified_rows = None

    def fetchall(self):
        return [(2,)]

    def close(self):
        pass


class Session:
    session_id = "session-1"


class WarehouseConnection:
    """A connection as databricks-sql-connector's ``Cursor`` reads it; its cursors are the real class."""

    use_inline_params = False
    lz4_compression = True
    use_cloud_fetch = True
    staging_allowed_local_path = None
    session = Session()

    def __init__(self, backend: RecordingBackend):
        self.backend = backend

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def cursor(self):
        from databricks.sql.client import Cursor

        return Cursor(self, self.backend)

    def close(self):
        pass


@pytest.fixture
def warehouse(monkeypatch, home):
    from healthcare_mlops.runtime import databricks_sql

    backend = RecordingBackend()
    monkeypatch.setattr(databricks_sql.DatabricksSqlEngine, "connect", lambda self: WarehouseConnection(backend))
    return backend, resolve_settings("prod", home)


@pytest.mark.parametrize("statement", [
    "INSERT INTO ml_patient_predictions SELECT * FROM ml_patient_predictions",
    "INSERT OVERWRITE ml_patient_predictions SELECT 1",
    "MERGE INTO a USING b ON a.k = b.k WHEN MATCHED THEN DELETE",
    "DELETE FROM ml_patient_predictions",
    "UPDATE ml_patient_predictions SET risk_score = 0",
    "DROP TABLE ml_patient_predictions",
    "CREATE TABLE x AS SELECT * FROM ml_patient_predictions",
    "COPY INTO ml_patient_predictions FROM 's3://bucket/x'",
    "TRUNCATE TABLE ml_patient_predictions",
    "ALTER TABLE ml_patient_predictions SET TBLPROPERTIES ('a' = 'b')",
    "GRANT SELECT ON TABLE silver_patients TO `someone@example.com`",
    "SET spark.databricks.delta.retentionDurationCheck.enabled = false",
    "USE CATALOG other",
    "OPTIMIZE ml_patient_predictions",
    "VACUUM ml_patient_predictions",
    "EXPLAIN SELECT 1",
    "EXECUTE IMMEDIATE 'DROP TABLE ml_patient_predictions'",
    "PUT '/etc/passwd' INTO '/Volumes/c/s/v/passwd'",
    "GET '/Volumes/c/s/v/x' TO '/tmp/x'",
    "FROM ml_patient_predictions INSERT INTO other SELECT *",
    "WITH x AS (SELECT 1) INSERT INTO other SELECT * FROM x",
    "SELECT 1; DROP TABLE ml_patient_predictions",
    "SELECT 1 /* /* */ ; DROP TABLE ml_patient_predictions; /* */",
])
def test_the_warehouse_refuses_anything_but_one_read_before_connecting(warehouse, statement):
    from healthcare_mlops.runtime.sql_engine import sql_engine

    backend, settings = warehouse
    with pytest.raises(UserError, match="^read-only: "):
        sql_engine(settings).query(statement)
    assert backend.sent == []


@pytest.mark.parametrize("statement, refusal", [
    ("SELECT * FROM IDENTIFIER('silver_patients')", "function IDENTIFIER refused"),
    ("SELECT first_name FROM (TABLE dim_patients)", "table reference 'TABLE AS dim_patients'"),
    ("(TABLE dim_patients)", "Paren statement refused"),
    ("SELECT ssn FROM delta.`/Volumes/healthcare_prod/insurance_ml/silver_patients`", "table reference 'delta."),
    ("SHOW CREATE TABLE silver_patients", "SHOW other than a listing"),
    ("SHOW TBLPROPERTIES ml_patient_predictions", "SHOW other than a listing"),
    ("SELECT http_request(conn => 'c', method => 'GET', path => '/')", "function HTTP_REQUEST refused"),
    ("SELECT * FROM read_files('/Volumes/healthcare_prod/insurance_ml/raw/')", "function READ_FILES refused"),
    ("SELECT ai_query('m', risk_score) FROM ml_patient_predictions", "function AI_QUERY refused"),
    ("SELECT * FROM other_table", "table reference 'other_table'"),
])
def test_the_warehouse_refuses_references_it_cannot_resolve_to_an_allowed_table(warehouse, statement, refusal):
    """Issue 24, item 7: these passed the client-side rule and were sent to the warehouse."""
    from healthcare_mlops.runtime.sql_engine import sql_engine

    backend, settings = warehouse
    with pytest.raises(UserError, match="^read-only: ") as refused_:
        sql_engine(settings).query(statement)
    assert refusal in str(refused_.value)
    assert backend.sent == []
    for listing in ("SHOW TABLES", "SHOW TABLES IN healthcare_prod.insurance_ml", "SHOW SCHEMAS"):
        sql_engine(settings).query(listing)
        assert backend.sent[-1]["operation"] == listing


def test_the_warehouse_hides_identifier_tables_unless_asked(warehouse):
    from healthcare_mlops.runtime.sql_engine import sql_engine

    backend, settings = warehouse
    for statement in ("SELECT ssn FROM healthcare_prod.insurance_ml.silver_patients",
                      "SELECT * FROM ml_patient_predictions p JOIN `dim_patients` d USING (patient_natural_key)",
                      "DESCRIBE HISTORY data_quality_quarantine"):
        with pytest.raises(UserError, match="holds direct identifiers.*--identifiers"):
            sql_engine(settings).query(statement)
    assert backend.sent == []
    frame = sql_engine(settings, identifiers=True).query("SELECT count(*) AS n FROM silver_patients")
    assert frame["n"].tolist() == [2]
    assert backend.sent[-1]["operation"] == "SELECT count(*) AS n FROM silver_patients"


def test_an_accepted_read_reaches_the_warehouse_as_the_connector_builds_it(warehouse):
    from healthcare_mlops.runtime.sql_engine import sql_engine

    backend, settings = warehouse
    statement = ("SELECT count(*) AS n FROM healthcare_prod.insurance_ml.ml_patient_predictions VERSION AS OF 3 "
                 "WHERE scoring_date = :day AND risk_category = :category")
    frame = sql_engine(settings).query(statement, {"day": DAY, "category": "critical"})
    assert frame.to_dict("records") == [{"n": 2}]
    [request] = backend.sent
    assert request["operation"] == statement
    assert [(p.name, p.type, p.value.stringValue) for p in request["parameters"]] == [
        ("day", "DATE", "2026-01-01"), ("category", "STRING", "critical")]
    for statement in ("SHOW TABLES", "DESCRIBE TABLE ml_patient_predictions",
                      "WITH s AS (SELECT 1 AS n) SELECT n FROM s UNION ALL SELECT 2"):
        sql_engine(settings).query(statement)
        assert backend.sent[-1]["operation"] == statement


def test_every_console_query_passes_both_read_rules():
    """The console sends these texts through the same rules: none may be refused."""
    from app.queries import QUERIES
    from healthcare_mlops.runtime.read_only import duckdb_read_statement, warehouse_read_statement
    from healthcare_mlops.runtime.sql_engine import duckdb_parameters

    settings = resolve_settings("prod")
    for query in QUERIES.values():
        warehouse_read_statement(query.sql(settings))
        duckdb_read_statement(duckdb_parameters(query.sql(settings)))
