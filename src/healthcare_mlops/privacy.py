"""What counts as personal data: HIPAA Safe Harbor identifiers and prohibited rating factors.

Used by the governance check "no prohibited inputs" and by the tests that scan every
table past the feature step for identifiers.
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


def prohibited_inputs(columns) -> list[str]:
    """The input columns a model must not use: identifiers and prohibited rating factors."""
    found = []
    for column in columns:
        name = str(column).strip().lower()
        if name in PROHIBITED_RATING_FACTORS or any(p.search(name) for p in IDENTIFIER_COLUMN_PATTERNS):
            found.append(str(column))
    return found
