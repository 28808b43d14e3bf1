"""The patient record contract: columns, allowed values and valid ranges, defined once.

The generator, the CSV ingest, the validation, the feature step and the tests all
import these; nothing restates a range or a category list elsewhere.
"""

from __future__ import annotations

from healthcare_mlops.tables import DATA_QUALITY_QUARANTINE_SPEC, DIM_PATIENTS_SPEC, SILVER_PATIENTS_SPEC

# The public insurance-charges format: header required, in any order.
SOURCE_COLUMNS = ("age", "sex", "bmi", "children", "smoker", "region", "charges")

SEXES = ("female", "male")
REGIONS = ("northeast", "northwest", "southeast", "southwest")
SMOKER_VALUES = {"yes": True, "no": False}

# Inclusive valid ranges of a loaded record.
AGE_RANGE = (18, 100)
BMI_RANGE = (10.0, 80.0)
CHILDREN_RANGE = (0, 10)
# Annual charges in USD, both bounds included. The lower bound (one dollar) catches values
# that are no member's year of care: zero, negatives, denormal floats (1e-320) and amounts
# in thousands of dollars read as dollars; the public table's minimum is 1,121.87. The upper
# bound catches unit slips (cents for dollars), digit runs and overflow (1e308), not costly
# members: it is about 157 x the public table's maximum (63,770) and above the largest
# one-member annual claims stop-loss carriers report (single-digit millions: gene therapies
# list at 2-3.5 M USD alone).
CHARGES_RANGE = (1.0, 10_000_000.0)

# Attributes whose change opens a new SCD2 version of a member in dim_patients.
SCD2_TRACKED = ("bmi", "smoker", "region", "children", "zip_code")

# silver_patients, dim_patients and data_quality_quarantine: columns and types in tables.py.
SILVER_SCHEMA_DDL = SILVER_PATIENTS_SPEC.ddl
SILVER_COLUMNS = SILVER_PATIENTS_SPEC.names

# dim_patients: SCD2 over the silver loads, keyed by patient_natural_key: the member's
# attributes, then the version columns.
DIM_SCD2_COLUMNS = tuple(c for c in DIM_PATIENTS_SPEC.names if c not in SILVER_COLUMNS)
DIM_ATTRIBUTE_COLUMNS = tuple(c for c in DIM_PATIENTS_SPEC.names if c not in DIM_SCD2_COLUMNS)

QUARANTINE_SCHEMA_DDL = DATA_QUALITY_QUARANTINE_SPEC.ddl
QUARANTINE_COLUMNS = DATA_QUALITY_QUARANTINE_SPEC.names
