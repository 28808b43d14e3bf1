"""MLflow for the target: SQLite plus a local artifact folder locally, the workspace on Databricks."""

from __future__ import annotations

import os
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING

from healthcare_mlops.errors import UserError
from healthcare_mlops.settings import Settings

if TYPE_CHECKING:                        # mlflow is imported where it is used: the console's pages that
    from mlflow.tracking import MlflowClient    # only need the registry's fingerprint do not pay for it

DEFAULT_EXPERIMENT = "/Shared/healthcare-mlops/insurance_model"


def configure_mlflow(settings: Settings) -> MlflowClient:
    """Point MLflow's tracking and registry at the target and return a client for both."""
    import mlflow

    # A job's log is not a terminal: MLflow's per-download progress bars are three lines of
    # noise each time a model or an artifact is read (the operator can set it back to true).
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    if settings.is_local:
        settings.mlflow_dir.mkdir(parents=True, exist_ok=True)
    client = mlflow_client(settings)
    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_registry_uri(settings.registry_uri)
    return client


def mlflow_client(settings: Settings) -> MlflowClient:
    """A client for the target's tracking and registry that leaves MLflow's process-wide URIs alone (the
    console serves every session from one process); locally, refused for a database a newer MLflow wrote."""
    from mlflow.tracking import MlflowClient

    if settings.is_local:
        refuse_a_newer_schema(settings.mlflow_dir / "mlflow.db")
    return MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.registry_uri)


def refuse_a_newer_schema(database: Path) -> None:
    """A ``UserError`` when the home's MLflow database was written by a newer MLflow than the one installed.

    MLflow itself reports such a database as "out-of-date" and says to run ``mlflow db upgrade``, which
    cannot help: the installed MLflow has no migration to the newer schema. An older schema is left to
    MLflow, whose message (back up, then ``mlflow db upgrade``) is right for it."""
    revision = _schema_revision(database)
    if revision is None or revision in _named_revisions() or revision in _known_revisions():
        return
    import mlflow

    raise UserError(f"the MLflow database {database} was written by a newer MLflow (schema revision {revision}) "
                    f"than the one installed (MLflow {mlflow.__version__} does not know that schema); install the "
                    f"MLflow that wrote it (`pip install -U mlflow`) or use another home (--home)")


def _schema_revision(database: Path) -> str | None:
    """The database's alembic revision; None when there is no database yet or it has no schema (MLflow
    creates both on first use)."""
    if not database.exists():
        return None
    # read-only, by a URI that quotes the path (a home's name may hold "?" or "#"); sqlite3's own context
    # manager only ends a transaction, closing() closes the file
    with closing(sqlite3.connect(f"{database.resolve().as_uri()}?mode=ro", uri=True)) as connection:
        try:
            row = connection.execute("SELECT version_num FROM alembic_version").fetchone()
        except sqlite3.OperationalError:           # no alembic_version table: an empty database
            return None
        except sqlite3.DatabaseError as error:     # not an SQLite file at all
            raise UserError(f"the MLflow database {database} cannot be read ({error}): "
                            "restore it from a backup or use another home (--home)") from error
    return row[0] if row else None


def _named_revisions() -> frozenset[str]:
    """The revisions in the names of MLflow's migration scripts (``<revision>_<slug>.py``, alembic's
    default): a directory listing, where reading the scripts through alembic takes most of a second on
    every command and console start; ``_known_revisions`` confirms a revision missing here."""
    from mlflow.store import db_migrations

    versions = Path(db_migrations.__file__).with_name("versions")
    return frozenset(name.split("_", 1)[0] for name in os.listdir(versions) if name.endswith(".py"))


def _known_revisions() -> frozenset[str]:
    """Every schema revision the installed MLflow's migrations define, read through alembic (the
    migrations folder MLflow ships: ``mlflow/store/db_migrations``)."""
    from alembic.script import ScriptDirectory
    from mlflow.store import db_migrations

    scripts = ScriptDirectory(os.path.dirname(db_migrations.__file__))
    return frozenset(script.revision for script in scripts.walk_revisions())


def experiment_name(settings: Settings) -> str:
    return str(settings.variables.get("experiment_name") or DEFAULT_EXPERIMENT)


def use_experiment(settings: Settings) -> str:
    """Create the experiment if needed (local artifacts under the home) and make it active."""
    import mlflow

    name = experiment_name(settings)
    experiment = mlflow.get_experiment_by_name(name)
    if experiment is None:
        artifact_location = settings.artifact_root if settings.is_local else None
        experiment_id = mlflow.create_experiment(name, artifact_location=artifact_location)
    else:
        experiment_id = experiment.experiment_id
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


# What a registry answers when the model, version or alias does not exist (SQLite and UC).
NOT_FOUND_CODES = frozenset({"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"})


def find_in_registry(call, *args):
    """``call(*args)``, or None when what it asks for does not exist.

    Any other registry failure (no permission, the workspace unreachable) is raised: it
    must not read as "there is no champion"."""
    from mlflow.exceptions import MlflowException

    try:
        return call(*args)
    except MlflowException as exc:
        if exc.error_code not in NOT_FOUND_CODES:
            raise
        return None


def registry_fingerprint(settings: Settings):
    """What changes when the registry changes, for caching: the local SQLite file's modification
    time (None before the first run created it); on a workspace ``()``: nothing to key on (the
    console keeps such results for a time window instead)."""
    if not settings.is_local:
        return ()
    try:
        return (settings.mlflow_dir / "mlflow.db").stat().st_mtime_ns
    except FileNotFoundError:
        return None
