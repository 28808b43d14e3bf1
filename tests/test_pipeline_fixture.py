"""The shared pipeline lakehouse is what later stages build on: check it once, loudly."""

from healthcare_mlops.composition import build_runtime
from healthcare_mlops.governance.service import CHAMPION
from healthcare_mlops.identity import local_identity
from healthcare_mlops.runtime.sql_engine import sql_engine
from healthcare_mlops.settings import resolve_settings


def test_pipeline_home_has_features_and_a_champion(pipeline_home):
    settings = resolve_settings("local", pipeline_home)
    counts = sql_engine(settings).query("SELECT count(*) AS n FROM ml_insurance_features")
    assert counts["n"][0] > 0
    assert build_runtime(settings).governance(local_identity()).alias(CHAMPION) == "1"
