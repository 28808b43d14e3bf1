"""The patient record contract: columns, allowed values and valid ranges, defined once.

The generator, the CSV ingest, the validation, the feature step and the tests all
import these; nothing restates a range or a category list elsewhere.
"""

from __future__ import annotations

# The public insurance-charges format: header required, in any order.
SOURCE_COLUMNS = ("age", "sex", "bmi", "children", "smoker", "region", "charges")

SEXES = ("female", "male")
REGIONS = ("northeast", "northwest", "southeast", "southwest")
SMOKER_VALUES = {"yes": True, "no": False}

# Inclusive valid ranges of a loaded record.
AGE_RANGE = (18, 100)
BMI_RANGE = (10.0, 80.0)
CHILDREN_RANGE = (0, 10)
# Annual charges in USD: more than the first, at most the second. The upper bound catches
# unit slips (cents for dollars), digit runs and overflow (1e308), not costly members: it
# is about 157 x the public table's maximum (63,770) and above the largest one-member
# annual claims stop-loss carriers report (single-digit millions: gene therapies list at
# 2-3.5 M USD alone).
CHARGES_RANGE = (0.0, 10_000_000.0)

# Attributes whose change opens a new SCD2 version of a member in dim_patients.
SCD2_TRACKED = ("bmi", "smoker", "region", "children", "zip_code")

# silver_patients: what a cleaned source extract holds, raw identifiers included,
# one row per member per load (as_of_date). Names and types in Spark DDL.
SILVER_SCHEMA_DDL = ", ".join([
    "patient_natural_key STRING",
    "member_id STRING",
    "first_name STRING",
    "last_name STRING",
    "ssn STRING",
    "date_of_birth DATE",
    "zip_code STRING",
    "sex STRING",
    "age INT",
    "bmi DOUBLE",
    "children INT",
    "smoker BOOLEAN",
    "region STRING",
    "annual_charges DOUBLE",
    "enrollment_date DATE",
    "as_of_date DATE",
    "source STRING",
    "source_row BIGINT",
])

SILVER_COLUMNS = tuple(part.split()[0] for part in SILVER_SCHEMA_DDL.split(", "))

# dim_patients: SCD2 over the silver loads, keyed by patient_natural_key.
DIM_SCD2_COLUMNS = ("effective_from", "effective_to", "is_current_record", "scd_version")
DIM_ATTRIBUTE_COLUMNS = ("patient_natural_key", "member_id", "first_name", "last_name", "ssn",
                         "date_of_birth", "zip_code", "sex", "age", "bmi", "children", "smoker",
                         "region", "enrollment_date", "source")

# data_quality_quarantine: one row per rejected input row, with where it came from and why.
QUARANTINE_SCHEMA_DDL = ", ".join([
    "stage STRING",
    "source STRING",
    "source_row BIGINT",
    "record_key STRING",
    "column_name STRING",
    "reason STRING",
    "raw_record STRING",
    "as_of_date DATE",
])

QUARANTINE_COLUMNS = tuple(part.split()[0] for part in QUARANTINE_SCHEMA_DDL.split(", "))
