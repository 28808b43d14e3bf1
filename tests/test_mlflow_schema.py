"""A home whose MLflow database another MLflow wrote (runtime/mlflow_setup.py ``refuse_a_newer_schema``).

MLflow calls a database at a schema revision it does not know "out-of-date" and says to run
``mlflow db upgrade``, which cannot help when a newer MLflow wrote it. Every command, job and the
console build their MLflow client through ``mlflow_client``, so each says what happened instead.
A real MLflow SQLite database is created here (MLflow's own migrations), then its revision changed.
"""

from __future__ import annotations

import os
import sqlite3

import mlflow
import pytest
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from healthcare_mlops.errors import UserError
from healthcare_mlops.runtime.mlflow_setup import configure_mlflow, mlflow_client, refuse_a_newer_schema
from healthcare_mlops.settings import resolve_settings

UNKNOWN_REVISION = "ffffffffffff"


@pytest.fixture(scope="module")
def mlflow_database(tmp_path_factory):
    """A database at the installed MLflow's head revision, and that head."""
    database = tmp_path_factory.mktemp("mlflow") / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{database}").search_experiments()     # MLflow creates and migrates it
    return database, _revision(database)


def _revision(database) -> str:
    with sqlite3.connect(database) as connection:
        return connection.execute("SELECT version_num FROM alembic_version").fetchone()[0]


def _set_revision(database, revision: str) -> None:
    with sqlite3.connect(database) as connection:
        connection.execute("UPDATE alembic_version SET version_num = ?", (revision,))


def _home_with(database, tmp_path, revision: str, name: str = "home"):
    settings = resolve_settings("local", tmp_path / name)
    settings.mlflow_dir.mkdir(parents=True)
    copy = settings.mlflow_dir / "mlflow.db"
    copy.write_bytes(database.read_bytes())
    _set_revision(copy, revision)
    return settings


def test_a_database_at_the_installed_schema_is_accepted_and_used(mlflow_database, tmp_path):
    database, head = mlflow_database
    settings = _home_with(database, tmp_path, head)
    client = mlflow_client(settings)
    assert [e.name for e in client.search_experiments()] == ["Default"]


def test_a_database_a_newer_mlflow_wrote_is_refused_with_what_to_do(mlflow_database, tmp_path):
    database, _ = mlflow_database
    settings = _home_with(database, tmp_path, UNKNOWN_REVISION)
    for build in (mlflow_client, configure_mlflow):
        with pytest.raises(UserError) as refused:
            build(settings)
        message = str(refused.value)
        assert "newer MLflow" in message and UNKNOWN_REVISION in message and mlflow.__version__ in message
        assert "--home" in message and "mlflow db upgrade" not in message


def test_an_older_schema_is_left_to_mlflow_whose_upgrade_advice_is_right_for_it(mlflow_database, tmp_path):
    """A revision the installed MLflow's migrations contain, but not the head: not refused here; MLflow itself
    stops and names `mlflow db upgrade`, which migrates it."""
    from alembic.script import ScriptDirectory
    from mlflow.store import db_migrations

    database, head = mlflow_database
    scripts = ScriptDirectory(os.path.dirname(db_migrations.__file__))
    older = scripts.get_revision(head).down_revision
    settings = _home_with(database, tmp_path, older)
    with pytest.raises(MlflowException, match="mlflow db upgrade"):
        mlflow_client(settings).search_experiments()


def test_no_database_yet_and_a_database_without_a_schema_are_left_for_mlflow_to_create(tmp_path):
    refuse_a_newer_schema(tmp_path / "absent.db")
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    refuse_a_newer_schema(empty)
    assert not (tmp_path / "absent.db").exists()        # only read, never created by the check


def test_a_home_whose_name_holds_uri_characters_is_read_as_that_path(mlflow_database, tmp_path):
    """The check opens the database by a URI: "?" and "#" in the home's name must not cut the path."""
    database, _ = mlflow_database
    settings = _home_with(database, tmp_path, UNKNOWN_REVISION, name="a?mode=rw#b %20c")
    with pytest.raises(UserError, match=UNKNOWN_REVISION):
        mlflow_client(settings)


def test_a_file_that_is_no_sqlite_database_is_refused_naming_it(tmp_path):
    settings = resolve_settings("local", tmp_path / "home")
    settings.mlflow_dir.mkdir(parents=True)
    (settings.mlflow_dir / "mlflow.db").write_bytes(b"this is not a database" * 100)
    with pytest.raises(UserError, match="cannot be read"):
        mlflow_client(settings)
