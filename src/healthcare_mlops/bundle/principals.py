"""Who does what on a workspace: every path's calls and the permission each needs, per principal.

One table, the single source of docs/deployment.md's "Principals" section and of the test
that the bundle's grants plus the documented manual grants cover every right a path needs
(``tests/test_bundle_principals.py``). Pure data: nothing here calls a workspace.

Principals:

- ``owner``: deploys the target and so owns (and runs) its jobs, experiment, registered model,
  app and the tables its jobs create; a service principal on staging and prod.
- ``developer``: the same role on ``dev``: a person deploying their own copy.
- ``app``: the console app's service principal (created with the app; the console's own calls).
- ``console_user``: the person using the console, through the token Databricks Apps forwards
  (``user_api_scopes``); only who they are, and the SQL when the console reads as the user.

A right names a securable the way the grants do: a job, the experiment or the registered model
by bundle key, a table by its logical name, ``schema``/``catalog`` for the target's, the landing
volume, the warehouse, the serving endpoint. ``OWNED`` rights need no grant (the principal
created the object); ``RUNTIME`` rights are granted by a job as the owner (the promotion grants
the app ``CAN_QUERY`` on the endpoint it creates).
"""

from __future__ import annotations

from dataclasses import dataclass

from healthcare_mlops import tables

OWNER, DEVELOPER, APP, CONSOLE_USER = "owner", "developer", "app", "console_user"
PRINCIPALS = {
    OWNER: "the deployer and job owner: a service principal on staging and prod",
    DEVELOPER: "a developer deploying dev (deployer and job owner of their own copy)",
    APP: "the console app's service principal",
    CONSOLE_USER: "the console user, through the token Databricks Apps forwards",
}
DEPLOYERS = (OWNER, DEVELOPER)

OWNED, GRANTED, RUNTIME, ENTITLEMENT = "owned", "granted", "runtime", "entitlement"

ALL_JOBS = ("feature_engineering", "model_training", "model_governance", "model_reproduction",
            "batch_inference", "model_monitoring", "ml_training_pipeline", "load_members")
# the tables the console reads through the warehouse: none holds a direct identifier
CONSOLE_TABLES = (tables.ML_PATIENT_PREDICTIONS, tables.ML_DRIFT_METRICS, tables.ML_FAIRNESS_METRICS,
                  tables.ML_MODEL_ALERTS, tables.MODEL_GOVERNANCE_LOG)
CONSOLE_WRITES = (tables.MODEL_GOVERNANCE_LOG, tables.ML_MODEL_ALERTS)


@dataclass(frozen=True)
class Right:
    """A permission on a securable: ``("table", "ml_model_alerts", "MODIFY")``."""

    kind: str         # job, experiment, registered_model, table, schema, catalog, volume, secret_scope, warehouse,
                      # endpoint, workspace
    securable: str
    permission: str


@dataclass(frozen=True)
class Call:
    """One workspace call of a path and the right it needs; ``how`` says how that right is held."""

    api: str
    right: Right
    how: str = GRANTED


@dataclass(frozen=True)
class Path:
    """A console action, a job or a CLI command on a workspace target, run by ``principal``."""

    name: str
    principal: str
    calls: tuple


def _job(key: str, level: str = "CAN_MANAGE_RUN") -> Right:
    return Right("job", key, level)


def _table(name: str, privilege: str = "SELECT") -> Right:
    return Right("table", name, privilege)


WAREHOUSE = Call("SQL statement through the warehouse (databricks-sql-connector)", Right("warehouse", "console", "CAN_USE"))
USE = (Call("use the target's catalog", Right("catalog", "catalog", "USE CATALOG")),
       Call("use the target's schema", Right("schema", "schema", "USE SCHEMA")))
CONSOLE_READ = (WAREHOUSE, *USE, *(Call(f"SELECT FROM {t}", _table(t)) for t in CONSOLE_TABLES))  # nosec B608  # a label, not SQL
REGISTRY_READ = (
    Call("registered_models.get / model_versions (versions, aliases, tags)", Right("registered_model", "insurance_model", "EXECUTE")),
    Call("MLflow get_run (metrics, params of a version's run)", Right("experiment", "insurance_risk", "CAN_READ")),
)

AUDIT = (WAREHOUSE, *USE, Call("INSERT INTO model_governance_log (who did it)", _table(tables.MODEL_GOVERNANCE_LOG, "MODIFY")))
# a decision reads the version's recorded validation first (refused without one)
DECISION = (*AUDIT, Call("SELECT FROM model_governance_log (the recorded validation)", _table(tables.MODEL_GOVERNANCE_LOG)))

# What a job's owner needs on the target's catalog and schema (it owns the rest).
OWNER_DATA = (
    *USE,
    Call("CREATE TABLE (the jobs' tables)", Right("schema", "schema", "CREATE TABLE")),
)


def _owner_job(job: str, *extra: Call) -> tuple:
    return (*OWNER_DATA, Call(f"runs as the owner of job {job}", _job(job, "IS_OWNER"), OWNED), *extra)


OWNED_MODEL = Call("model versions, aliases, tags (write)", Right("registered_model", "insurance_model", "OWNER"), OWNED)
OWNED_EXPERIMENT = Call("MLflow runs and artifacts (write)", Right("experiment", "insurance_risk", "CAN_MANAGE"), OWNED)
LANDING = (Call("read the member file in the landing volume (source=csv)", Right("volume", "landing", "READ VOLUME")),
           Call("stage the file in the landing volume", Right("volume", "landing", "WRITE VOLUME")),
           Call("dbutils.secrets.get member-key (a file with member ids)",
                Right("secret_scope", "member_key_secret_scope", "READ"), ENTITLEMENT))
ENDPOINT = (Call("serving_endpoints.create / update_config (promotion)", Right("workspace", "serving", "model serving endpoint creation"), ENTITLEMENT),
            Call("serving endpoint permissions: the app's CAN_QUERY", Right("endpoint", "serving", "CAN_MANAGE"), OWNED),
            Call("apps.get (the app's service principal)", Right("app", "console", "CAN_MANAGE"), OWNED))

JOB_PATHS = (
    Path("job load_members", OWNER, _owner_job("load_members", *LANDING)),
    Path("job feature_engineering", OWNER, _owner_job("feature_engineering")),
    Path("job model_training", OWNER, _owner_job("model_training", OWNED_MODEL, OWNED_EXPERIMENT)),
    Path("job model_governance", OWNER, _owner_job("model_governance", OWNED_MODEL, OWNED_EXPERIMENT, *ENDPOINT)),
    Path("job model_reproduction", OWNER, _owner_job("model_reproduction", OWNED_MODEL, OWNED_EXPERIMENT)),
    Path("job batch_inference", OWNER, _owner_job("batch_inference", OWNED_MODEL)),
    Path("job model_monitoring", OWNER, _owner_job("model_monitoring", OWNED_MODEL,
                                                   Call("jobs.run_now ml_training_pipeline (critical alert)",
                                                        _job("ml_training_pipeline", "IS_OWNER"), OWNED))),
    Path("job ml_training_pipeline", OWNER, _owner_job("ml_training_pipeline", OWNED_MODEL, OWNED_EXPERIMENT, *ENDPOINT)),
)

CONSOLE_PATHS = (
    Path("console: sign-in (who and which role)", CONSOLE_USER,
         (Call("current_user.me (forwarded token, scope iam.current-user:read)", Right("workspace", "user", "user_api_scopes: iam.current-user:read"), ENTITLEMENT),)),
    Path("console: view pages", APP, (*CONSOLE_READ, *REGISTRY_READ,
                                      *(Call(f"jobs.get / jobs.list_runs {j}", _job(j, "CAN_VIEW")) for j in ALL_JOBS))),
    Path("console: approve", APP, (*DECISION, Call("jobs.run_now model_governance (model_version)", _job("model_governance")))),
    Path("console: reject", APP, (*DECISION, Call("jobs.run_now model_governance (model_version)", _job("model_governance")))),
    Path("console: acknowledge an alert", APP, (*AUDIT, Call("SELECT FROM ml_model_alerts (the alert)", _table(tables.ML_MODEL_ALERTS)),
                                                Call("UPDATE ml_model_alerts", _table(tables.ML_MODEL_ALERTS, "MODIFY")))),
    Path("console: run now", APP, (*(Call(f"jobs.run_now {j}", _job(j)) for j in ALL_JOBS), *AUDIT)),
    Path("console: reproduce", APP, (Call("jobs.run_now model_reproduction", _job("model_reproduction")), *AUDIT)),
    Path("console: score", APP, (Call("serving_endpoints.query", Right("endpoint", "serving", "CAN_QUERY"), RUNTIME),)),
    Path("console: export risk CSV", APP, (WAREHOUSE, *USE, Call("SELECT FROM ml_patient_predictions",
                                                               _table(tables.ML_PATIENT_PREDICTIONS)))),
)

CLI_PATHS = (
    Path("databricks bundle deploy -t staging (or prod)", OWNER, (
        Call("workspace files under the principal's home (root_path)", Right("workspace", "home", "its own home folder"), OWNED),
        Call("jobs.create / reset, apps.create / deploy / start, experiments.create", Right("workspace", "create", "workspace access, serverless jobs, apps"), ENTITLEMENT),
        Call("registered_models.create in the schema", Right("schema", "schema", "CREATE MODEL")),
        *USE, Call("the app's CAN_USE on the warehouse (app resource)", Right("warehouse", "console", "CAN_MANAGE"),
                   ENTITLEMENT))),
    Path("databricks bundle deploy -t dev", DEVELOPER, (
        Call("workspace files under your home", Right("workspace", "home", "its own home folder"), OWNED),
        Call("jobs.create / reset, apps.create / deploy / start, experiments.create", Right("workspace", "create", "workspace access, serverless jobs, apps"), ENTITLEMENT),
        Call("registered_models.create in the schema", Right("schema", "schema", "CREATE MODEL")),
        *USE, Call("the app's CAN_USE on the warehouse (app resource)", Right("warehouse", "console", "CAN_MANAGE"),
                   ENTITLEMENT))),
    Path("databricks bundle run -t dev JOB (every job, as the developer)", DEVELOPER, tuple(
        {c.right: c for p in JOB_PATHS for c in p.calls}.values())),
    Path("healthcare-mlops --target T governance approve, promote, rollback", OWNER, (
        OWNED_MODEL, OWNED_EXPERIMENT, *ENDPOINT)),
    Path("healthcare-mlops --target T governance repair", OWNER, (OWNED_MODEL,)),
)

PATHS = (*CONSOLE_PATHS, *JOB_PATHS, *CLI_PATHS)


def needed(principal: str, how: str = GRANTED) -> set[Right]:
    """The rights ``principal`` must be granted (``how``) for every path it runs."""
    return {call.right for path in PATHS if path.principal == principal for call in path.calls if call.how == how}


def paths_needing(principal: str, right: Right) -> list[str]:
    """The paths of ``principal`` that make a call needing ``right``."""
    return [path.name for path in PATHS if path.principal == principal and any(c.right == right for c in path.calls)]


HOW = {OWNED: "owns it", GRANTED: "granted", RUNTIME: "granted by the promotion", ENTITLEMENT: "set by a workspace admin"}


def render_markdown() -> str:
    """The table as docs/deployment.md shows it (a test keeps the two identical)."""
    lines = ["| path | runs as | call | needs | held by |", "|---|---|---|---|---|"]
    for path in PATHS:
        for call in path.calls:
            right = call.right
            lines.append(f"| {path.name} | {path.principal} | {call.api} | `{right.permission}` on "
                         f"{right.kind} `{right.securable}` | {HOW[call.how]} |")
    return "\n".join(lines) + "\n"
