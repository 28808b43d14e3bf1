"""One definition each: tables, group columns, risk bands and severities, thresholds.

Each test fails when a second copy of a definition appears: the source of ``src/``,
``app/``, ``pages/`` and ``jobs/`` is parsed with ``ast`` and searched for literals that
restate what the registry says.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pyarrow as pa
import pytest

from healthcare_mlops import tables
from healthcare_mlops.errors import UserError
from healthcare_mlops.features import definitions as d
from healthcare_mlops.governance.thresholds import approval_mode
from healthcare_mlops.modeling.risk import HIGH_RISK_CATEGORY, RISK_CATEGORIES, RiskBand
from healthcare_mlops.monitoring.contract import SEVERITIES, AlertSeverity
from healthcare_mlops.scoring.rules import BusinessRules, ScoringThresholds
from healthcare_mlops.parameters import monitoring_thresholds, scoring_thresholds
from healthcare_mlops.settings import resolve_settings

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "src" / "healthcare_mlops"
TABLES = PACKAGE / "tables.py"
SOURCES = sorted([*PACKAGE.rglob("*.py"), *(REPO / "app").glob("*.py"), *(REPO / "pages").glob("*.py"),
                  *(REPO / "jobs").glob("*.py")])
TYPE_NAMES = {kind.value for kind in tables.ColumnType}
DDL_COLUMN = re.compile(r"\b[a-z_][a-z0-9_]* (" + "|".join(sorted(TYPE_NAMES)) + r")\b")


def _constants(path: Path):
    """The literals of a module, docstrings left out (they may name what they explain)."""
    tree = ast.parse(path.read_text(), str(path))
    docstrings = {id(body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and (body := node.body) and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and id(node) not in docstrings:
            yield node


def _where(path: Path, node) -> str:
    return f"{path.relative_to(REPO)}:{node.lineno}"


# ----------------------------------------------------------------------------- tables

def test_no_module_but_the_table_registry_writes_a_column_type():
    found = [f"{_where(path, node)} {node.value!r}" for path in SOURCES if path != TABLES
             for node in _constants(path) if isinstance(node.value, str)
             and (DDL_COLUMN.search(node.value) or node.value in TYPE_NAMES)]
    assert not found, "column types restated outside tables.py (derive them from its TableSpec):\n" + "\n".join(found)


# pa.schema(...) outside tables.py: only the adapters' schema plumbing (Delta's schema as pyarrow's, a
# spooled load's partition fields taken from its table's schema) and the CSV staging schema (every raw
# field as text, before any contract applies; not a table).
ARROW_SCHEMA_ALLOWED = {PACKAGE / "runtime" / "delta_catalog.py", PACKAGE / "runtime" / "spooled_parquet.py",
                        PACKAGE / "data" / "csv_source.py"}


def test_no_module_but_the_table_registry_builds_an_arrow_schema_of_a_table():
    found = []
    for path in SOURCES:
        if path == TABLES or path in ARROW_SCHEMA_ALLOWED:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "schema" \
                    and isinstance(node.func.value, ast.Name) and node.func.value.id in ("pa", "pyarrow"):
                found.append(_where(path, node))
    assert not found, f"Arrow schemas built by hand (use TableSpec.arrow_schema()): {found}"


def test_every_table_has_one_spec_and_its_derivations_agree():
    assert tables.ALL_TABLES == tuple(spec.name for spec in tables.SPECS)
    assert len(set(tables.ALL_TABLES)) == len(tables.ALL_TABLES)
    for spec in tables.SPECS:
        assert len(set(spec.names)) == len(spec.names), spec.name
        assert set(spec.partition_by) <= set(spec.names), spec.name
        assert spec.ddl.split(", ") == [f"{name} {kind}" for name, kind in spec.columns.pairs]
        schema = spec.arrow_schema()
        assert schema.names == list(spec.names)
    assert tables.PERSONAL_TABLES == (tables.SILVER_PATIENTS, tables.DIM_PATIENTS, tables.DATA_QUALITY_QUARANTINE)
    assert not set(tables.PERSONAL_TABLES) & set(tables.DEIDENTIFIED_TABLES)
    assert set(tables.PERSONAL_TABLES) | set(tables.DEIDENTIFIED_TABLES) == set(tables.ALL_TABLES)


def test_the_arrow_types_are_the_ones_delta_and_spark_store():
    alerts = tables.ML_MODEL_ALERTS_SPEC.arrow_schema()
    assert alerts.field("created_at").type == pa.timestamp("us", tz="UTC")
    assert alerts.field("window_start").type == pa.date32()
    features = tables.ML_INSURANCE_FEATURES_SPEC.arrow_schema()
    assert (features.field("age").type, features.field("smoker").type) == (pa.int32(), pa.bool_())
    assert tables.MEMBER_LOADS_SPEC.arrow_schema().field("rows_in").type == pa.int64()
    with pytest.raises(ValueError):
        tables.ColumnType("VARCHAR")        # a type the registry does not know is refused


def test_identifier_columns_live_only_in_tables_that_say_they_hold_identifiers():
    identifiers = {"first_name", "last_name", "ssn", "member_id", "date_of_birth", "zip_code"}
    for spec in tables.SPECS:
        if not spec.holds_identifiers:
            assert not identifiers & set(spec.names), spec.name


# ----------------------------------------------------------------------------- group columns

GROUP_NAMES = set(d.FAIRNESS_GROUP_COLUMNS)
REGISTRY = PACKAGE / "features" / "definitions.py"


def test_no_module_but_the_registry_lists_group_columns():
    """A literal list of group columns only (two or more with ``sex``, or three or more) is a copy.

    Lists of a record's columns (a source row, a screen's columns) name group columns among
    others and are not group lists.
    """
    found = []
    for path in SOURCES:
        if path == REGISTRY:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.Tuple, ast.List, ast.Set)) and node.elts \
                    and all(isinstance(e, ast.Constant) and e.value in GROUP_NAMES for e in node.elts):
                names = {e.value for e in node.elts}
                if len(names) >= 3 or (len(names) >= 2 and "sex" in names):
                    found.append(f"{_where(path, node)} {sorted(names)}")
    assert not found, "group columns listed outside features/definitions.py:\n" + "\n".join(found)


def test_the_group_registry_says_what_each_use_gets():
    assert d.PROTECTED_ATTRIBUTES == ("sex",)
    assert set(d.RATING_FACTORS) == {"age_band", "region", "smoker", "family_size_category"}
    assert d.FAIRNESS_GROUP_COLUMNS == (*[g for g in d.FAIRNESS_GROUP_COLUMNS if g in d.PROTECTED_ATTRIBUTES],
                                        *[g for g in d.FAIRNESS_GROUP_COLUMNS if g in d.RATING_FACTORS])
    # monitoring groups by what the predictions table carries
    assert set(d.GROUP_COLUMNS) <= set(tables.ML_PATIENT_PREDICTIONS_SPEC.names)
    assert set(d.WINDOW_FAIRNESS_GROUPS) <= set(d.GROUP_COLUMNS) <= set(d.FAIRNESS_GROUP_COLUMNS)
    assert "family_size_category" not in d.GROUP_COLUMNS
    assert not set(d.PROTECTED_ATTRIBUTES) & set(d.MODEL_INPUT_COLUMNS)


def test_governance_monitoring_training_and_the_console_read_the_registry():
    from app import vocabulary
    from healthcare_mlops.governance import checks
    from healthcare_mlops.modeling import training
    from healthcare_mlops.monitoring import evaluation

    assert checks.FAIRNESS_GROUPS is d.FAIRNESS_GROUP_COLUMNS
    assert evaluation.FAIRNESS_GROUPS is d.WINDOW_FAIRNESS_GROUPS
    assert training.REPORTING_GROUPS is d.WINDOW_FAIRNESS_GROUPS
    assert vocabulary.FAIRNESS_GROUPS is d.FAIRNESS_GROUP_COLUMNS
    assert vocabulary.SCORED_RATING_FACTORS is d.SCORED_RATING_FACTORS


# ----------------------------------------------------------------------------- bands and severities

# "critical" is a risk band (RiskBand), an alert severity (AlertSeverity) and the OOF evidence's
# flag column (group_evidence.CRITICAL); each is spelled once.
CRITICAL_SPELLED = {PACKAGE / "modeling" / "risk.py", PACKAGE / "monitoring" / "contract.py",
                    PACKAGE / "governance" / "group_evidence.py"}


def test_critical_is_spelled_only_where_it_is_defined():
    found = [_where(path, node) for path in SOURCES if path not in CRITICAL_SPELLED
             for node in _constants(path) if node.value == "critical"]
    assert not found, f"'critical' spelled outside its definitions (use RiskBand / AlertSeverity): {found}"


def test_the_enums_keep_the_strings_the_tables_hold():
    assert [label for _, label in RISK_CATEGORIES] == [band.value for band in RiskBand]
    assert all(type(label) is str for _, label in RISK_CATEGORIES)       # plain strings in the tables
    assert HIGH_RISK_CATEGORY == RiskBand.CRITICAL == "critical"
    assert SEVERITIES == ("info", "warning", "critical") == tuple(AlertSeverity)


def test_the_critical_risk_column_is_named_in_one_place():
    found = [_where(path, node) for path in SOURCES if path != TABLES
             for node in _constants(path) if isinstance(node.value, str)
             and re.search(rf"\b{tables.IS_CRITICAL_RISK}\b", node.value)]
    assert not found, f"the critical-risk column spelled outside tables.py (use IS_CRITICAL_RISK): {found}"
    assert tables.ML_PATIENT_PREDICTIONS_SPEC.columns.types[tables.IS_CRITICAL_RISK] == "BOOLEAN"


# ----------------------------------------------------------------------------- thresholds

def test_the_drift_page_has_no_threshold_of_its_own():
    page = REPO / "pages" / "drift.py"
    numbers = [_where(page, node) for node in _constants(page) if type(node.value) is float]
    assert not numbers, f"float literals on the drift page: {numbers}"
    assert "variables.get(" not in page.read_text()


def test_no_threshold_default_is_read_beside_the_bundle_variables():
    """``variables.get(name, default)`` and ``variables.get(name) or default`` restate a bundle default."""
    defaults, approval = [], []
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get"):
                continue
            on_variables = isinstance(node.func.value, ast.Attribute) and node.func.value.attr == "variables"
            if on_variables and len(node.args) > 1:
                defaults.append(_where(path, node))
            if node.args and isinstance(node.args[0], ast.Constant) and node.args[0].value == "approval_mode" \
                    and path != PACKAGE / "governance" / "thresholds.py":
                approval.append(_where(path, node))
    assert not defaults, f"defaults read beside the bundle variables: {defaults}"
    assert not approval, f"approval_mode read outside governance/thresholds.py: {approval}"


def test_a_missing_or_hostile_scoring_threshold_fails_loudly():
    with pytest.raises(UserError, match="scoring threshold 'min_predicted_charges' is not set"):
        scoring_thresholds({"review_interval_width_ratio": "2"})
    with pytest.raises(UserError, match="scoring threshold 'review_interval_width_ratio' is not set"):
        scoring_thresholds({"min_predicted_charges": "1000", "review_interval_width_ratio": ""})
    for hostile in ("inf", "nan", "-inf", "1e999"):
        with pytest.raises(UserError, match="must be a finite number"):
            scoring_thresholds({"min_predicted_charges": hostile, "review_interval_width_ratio": "2"})
    with pytest.raises(UserError, match="must be >= 0"):
        scoring_thresholds({"min_predicted_charges": "-1", "review_interval_width_ratio": "2"})


def test_the_page_the_jobs_and_the_rules_read_the_same_thresholds():
    variables = resolve_settings("local").variables
    t = monitoring_thresholds(variables)
    names = ("psi_moderate", "psi_significant", "composite_drift_alert")
    assert tuple(getattr(t, name) for name in names) == tuple(float(variables[name]) for name in names)
    missing = {k: v for k, v in variables.items() if k != "psi_significant"}
    with pytest.raises(UserError, match="monitoring threshold 'psi_significant' is not set"):
        monitoring_thresholds(missing)
    rules = BusinessRules.for_model(scoring_thresholds(variables))
    assert rules.thresholds == ScoringThresholds(float(variables["min_predicted_charges"]),
                                                 float(variables["review_interval_width_ratio"]))


def test_approval_mode_is_read_in_one_place():
    assert approval_mode({}) == "auto"
    assert approval_mode({"approval_mode": "manual"}) == "manual"
    with pytest.raises(UserError, match="approval_mode must be 'auto' or 'manual'"):
        approval_mode({"approval_mode": "yolo; DROP TABLE"})
