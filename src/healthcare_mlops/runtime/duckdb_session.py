"""The locked DuckDB session over the local Delta tables: the one setup of every local read path.

Each chosen table that exists becomes the view ``<catalog>.<schema>.<table>`` on an in-memory
catalog named like the target's catalog, and the search path is that schema, so unqualified
names resolve the way they do in a Databricks SQL warehouse with ``USE CATALOG``/``USE SCHEMA``.

The session is closed around those views before anyone's SQL runs: extensions are neither
installed nor loaded automatically, Python variables are not scanned as tables, external
access is off with exactly the tables' current Parquet files allowed (``allowed_paths``),
spilling to disk is off, and then the configuration is locked, so no ``SET`` can give any of it
back. A table left out of the session (the identifier tables, unless asked for) has neither a view nor allowed files.
``allowed_paths`` lets DuckDB write those files as well as read them, which is why the
statement rule (``read_only.duckdb_read_statement``) runs in front of every query.

Spilling is off because DuckDB always allows its temp directory, by default ``.tmp`` in the
working directory resolved through symlinks: a ``.tmp`` linked to the tables' folder (or to
``/etc``) would otherwise be readable whatever ``allowed_paths`` says.
"""

from __future__ import annotations

import datetime as dt
import os
import urllib.parse
from collections.abc import Iterable

import duckdb
import pyarrow as pa
from deltalake import DeltaTable

from healthcare_mlops.runtime.delta_catalog import DeltaCatalog
from healthcare_mlops.settings import Settings

# Set when the connection opens, before any statement runs ("temp_directory": "" turns spilling off).
SETUP = {"autoinstall_known_extensions": False, "autoload_known_extensions": False,
         "python_enable_replacements": False, "temp_directory": ""}


def quoted(identifier: str) -> str:
    """A SQL identifier in double quotes (DuckDB and Spark SQL both read it so)."""
    return '"' + identifier.replace('"', '""') + '"'


def _sql_string(value: str) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def _partition_text(value) -> str:
    return value.isoformat() if isinstance(value, (dt.date, dt.datetime)) else str(value)


def parquet_files(table: DeltaTable) -> list[str] | None:
    """The current snapshot's Parquet files, or None when DuckDB could not read them as the same
    table: no files, or a file whose folder names do not carry exactly its Delta partition values."""
    actions = pa.table(table.get_add_actions(flatten=True))
    if actions.num_rows == 0:
        return None
    partitions = list(table.metadata().partition_columns)
    root = urllib.parse.unquote(urllib.parse.urlparse(table.table_uri).path) \
        if "://" in table.table_uri else table.table_uri
    files = []
    for row in actions.select(["path", *(f"partition.{c}" for c in partitions)]).to_pylist():
        relative = urllib.parse.unquote(row["path"])
        segments = relative.split("/")
        for column in partitions:
            value = row[f"partition.{column}"]
            if value is None or f"{column}={_partition_text(value)}" not in segments:
                return None
        files.append(os.path.join(root, relative))
    return files


def native_parquet_view(connection, files: list[str], partitions: list[str], view: str) -> bool:
    """Point ``view`` at DuckDB's own Parquet reader over ``files`` (its table's current files).

    The dataset view reads each Delta snapshot through pyarrow; DuckDB reads the same files about
    three times faster natively (and prunes partitions by the hive-style folder names). The
    native view replaces the dataset view only when the columns and their types are identical;
    otherwise the dataset view stays. Returns whether it replaced it.
    """
    expected = connection.execute(f"DESCRIBE {view}").fetchall()
    types = {column: kind for column, kind, *_ in expected}
    hive = ", ".join(f"{_sql_string(c)}: {_sql_string(types[c])}" for c in partitions)
    # Paths and types are quoted literals from the Delta log, never a person's text.
    hive_options = (f", hive_partitioning = true, hive_types = {{{hive}}}" if partitions
                    else ", hive_partitioning = false")
    source = f"read_parquet([{', '.join(_sql_string(f) for f in files)}], union_by_name = true{hive_options})"
    columns = ", ".join(quoted(c) for c, *_ in expected)
    select = f"SELECT {columns} FROM {source}"  # nosec B608 # quoted names, literals from the Delta log
    try:
        native = connection.execute(f"DESCRIBE {select}").fetchall()
    except duckdb.Error:   # a file DuckDB cannot read the same way: keep the dataset view
        return False
    if [(c, k) for c, k, *_ in native] != [(c, k) for c, k, *_ in expected]:
        return False
    connection.execute(f"CREATE OR REPLACE VIEW {view} AS {select}")
    return True


def open_locked(settings: Settings, names: Iterable[str]) -> tuple[duckdb.DuckDBPyConnection, set[str]]:
    """A locked session with a view for each of ``names`` that exists (see the module's docstring),
    and the tables whose views read their Parquet files natively."""
    store = DeltaCatalog(settings)
    tables = {name: store.delta_table(name) for name in names if store.exists(name)}
    files = {name: parquet_files(table) for name, table in tables.items()}
    allowed = sorted(path for paths in files.values() if paths for path in paths)
    schema = f"{quoted(settings.catalog)}.{quoted(settings.schema)}"
    connection = duckdb.connect(config=SETUP)
    try:
        if allowed:      # only settable while external access is on
            connection.execute("SET allowed_paths = $paths", {"paths": allowed})
        connection.execute("SET enable_external_access = false")
        connection.execute(f"ATTACH ':memory:' AS {quoted(settings.catalog)}")
        connection.execute(f"CREATE SCHEMA {schema}")
        native = set()
        for name, table in tables.items():
            view, dataset = f"{schema}.{quoted(name)}", f"__delta_{name}"
            connection.register(dataset, table.to_pyarrow_dataset())
            dataset_view = f"CREATE VIEW {view} AS SELECT * FROM {quoted(dataset)}"  # nosec B608 # quoted names
            connection.execute(dataset_view)
            partitions = list(table.metadata().partition_columns)
            if files[name] and native_parquet_view(connection, files[name], partitions, view):
                native.add(name)
                connection.unregister(dataset)      # the native view no longer needs it
        connection.execute(f"USE {schema}")
        connection.execute("SET lock_configuration = true")
    except BaseException:
        connection.close()
        raise
    return connection, native
