"""The product's facts a page shows or offers as choices, defined once in the domain package.

Pages import only from ``app/`` (docs/architecture.md); what they need of the domain's
definitions (regions, age bands, input ranges, fairness groups, verdict words, table
names) comes through here.
"""

from healthcare_mlops import tables
from healthcare_mlops.data.contract import AGE_RANGE, BMI_RANGE, CHILDREN_RANGE, REGIONS
from healthcare_mlops.features.definitions import AGE_BANDS
from healthcare_mlops.governance.checks import FAIRNESS_GROUPS, in_words
from healthcare_mlops.modeling.artifacts import PROMOTION_PENDING
from healthcare_mlops.monitoring.evaluation import ALERT, OK, MonitoringThresholds

__all__ = ["AGE_BANDS", "AGE_RANGE", "ALERT", "BMI_RANGE", "CHILDREN_RANGE", "FAIRNESS_GROUPS", "OK",
           "PROMOTION_PENDING", "REGIONS", "MonitoringThresholds", "in_words", "tables"]
