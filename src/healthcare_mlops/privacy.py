"""What counts as personal data: HIPAA Safe Harbor identifiers and prohibited rating factors.

Used by the governance check "no prohibited inputs" (column names) and by the tests that
scan every table past the feature step and every MLflow artifact: ``personal_data`` reads
values too (SSN, phone and e-mail patterns, and values equal to a member key of
silver_patients), not only column names.
"""

from __future__ import annotations

import re

# Column names that carry one of the 18 Safe Harbor identifiers (45 CFR 164.514(b)(2)).
IDENTIFIER_COLUMN_PATTERNS = tuple(re.compile(p) for p in (
    r"(^|_)(first|last|full|middle)?_?name$", r"ssn", r"social_security", r"member_id", r"mrn",
    r"medical_record", r"beneficiary", r"account", r"license", r"certificate", r"^zip(_?code)?$",
    r"zip5", r"postal", r"address", r"street", r"^city$", r"county", r"phone", r"fax", r"e_?mail",
    r"date_of_birth", r"birth_?date", r"^dob$", r"admission", r"discharge", r"death", r"vehicle",
    r"device", r"serial", r"url", r"ip_address", r"biometric", r"photo", r"face",
))

# Not a Safe Harbor identifier, but not an allowed rating factor under the ACA
# (42 U.S.C. 300gg: age, tobacco, family size and geography only).
PROHIBITED_RATING_FACTORS = ("sex", "gender")


# Field names a caller may send for those identifiers and factors (each one matched by
# ``prohibited_inputs``). The model's signature declares them as optional inputs: MLflow's
# schema enforcement drops undeclared fields before the model sees them, so a declared
# one is the only kind the model can refuse by name. The local scoring server checks every
# field name of a request with ``prohibited_inputs`` before MLflow drops anything.
PROHIBITED_FIELD_NAMES = (*PROHIBITED_RATING_FACTORS, "name", "first_name", "last_name", "ssn", "member_id",
                          "mrn", "zip", "zip_code", "address", "city", "phone", "email", "date_of_birth",
                          "dob", "birth_date")

# Other words for those fields, as ``field_key`` spells them: each is refused like the field it means.
FIELD_SYNONYMS = ("social_security_number", "social_security_no", "tax_id", "surname", "family_name",
                  "given_name", "forename", "full_name", "patient_name", "member_number", "subscriber_id",
                  "patient_id", "postcode", "postal_code", "zipcode", "telephone", "phone_number", "mobile",
                  "cell_phone", "e_mail", "mail", "birthdate", "birthday", "gender_identity", "sex_at_birth")


def field_key(name) -> str:
    """A field name as lowercase words joined by ``_``: camelCase, dashes, dots and spaces split
    (``FirstName``, ``first-name``, ``First Name`` -> ``first_name``; ``MemberID`` -> ``member_id``)."""
    text = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", str(name).strip())
    text = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", text)
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


# The named fields without separators, so that ``FIRSTNAME`` or ``member id`` meets ``first_name``.
_COMPACT_NAMES = frozenset(n.replace("_", "") for n in (*PROHIBITED_FIELD_NAMES, *FIELD_SYNONYMS))


def is_prohibited(column) -> bool:
    """Whether a column or field name names an identifier or a prohibited rating factor, whatever
    its case, separators (camelCase, dashes, spaces, underscores) or a known synonym."""
    key = field_key(column)
    return (key.replace("_", "") in _COMPACT_NAMES or key in PROHIBITED_RATING_FACTORS
            or any(p.search(key) for p in IDENTIFIER_COLUMN_PATTERNS))


def prohibited_inputs(columns) -> list[str]:
    """The input columns a model must not use: identifiers and prohibited rating factors."""
    return [str(column) for column in columns if is_prohibited(column)]


# -- values ----------------------------------------------------------------------------------------
# What personal data looks like inside a value, wherever its column's name points.
VALUE_PATTERNS = {
    "an SSN": re.compile(r"(?<![\d-])\d{3}-\d{2}-\d{4}(?![\d-])"),
    "a phone number": re.compile(r"(?<![\w-])(\+?1[-. ])?(\(\d{3}\)\s?|\d{3}[-. ])\d{3}[-. ]\d{4}(?![\w-])"),
    "an e-mail address": re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"),
}
# Columns that record which staff member acted (the audit trail needs them), not a member.
STAFF_COLUMNS = ("actor", "acknowledged_by", "trigger")
# Column names the identifier patterns match that name a thing, not a person.
THING_NAMES = ("model_name", "column_name")
# The de-identified member key: it may key rows past the feature step, in this column only.
MEMBER_KEY = "patient_natural_key"
SILVER_KEY_COLUMNS = (MEMBER_KEY, "member_id")


def member_keys(silver) -> frozenset:
    """Every ``patient_natural_key`` and ``member_id`` value of silver_patients (a pandas frame)."""
    return frozenset(str(v) for column in SILVER_KEY_COLUMNS if column in silver.columns
                     for v in silver[column].dropna())


def _text_values(series) -> list[str]:
    """A column's distinct non-null values as text; nested values (lists, dicts) as JSON-ish text."""
    return [str(v) for v in series.dropna().astype(str).unique()]


def personal_data(frame, where: str, keys: frozenset = frozenset(), key_column: str | None = None) -> list[str]:
    """What in ``frame`` is personal data, one line each: an identifier column name, a value
    that looks like an SSN, phone number or e-mail address, or a value that equals a member
    key of silver (``keys``; ``key_column`` may hold the de-identified key by design)."""
    found = [f"{where}: column '{c}' names an identifier" for c in prohibited_inputs(frame.columns)
             if c != key_column and str(c).lower() not in (*PROHIBITED_RATING_FACTORS, *THING_NAMES)]
    for column in frame.columns:
        if column in STAFF_COLUMNS or frame[column].dtype.kind in "biufcmM":
            continue                                   # numbers, dates and staff names carry no member text
        values = _text_values(frame[column])
        for kind, pattern in VALUE_PATTERNS.items():
            hit = next((v for v in values if pattern.search(v)), None)
            if hit is not None:
                found.append(f"{where}: column '{column}' holds what looks like {kind}")
        if keys and column != key_column and any(v in keys for v in values):
            found.append(f"{where}: column '{column}' holds member keys of silver_patients")
    return found
