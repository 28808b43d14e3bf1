"""Parameters of the synthetic membership, fitted to the public insurance-charges table.

Targets (docs/definitions.md (the public table)): age 18-64 with extra weight on 18-19 (mean 39.2, sd 14.0);
sex 50/50; regions about 24 % each with southeast 27 %; smokers 20.5 %; children
43/24/18/12/2/1 %; bmi mean 30.7, sd 6.1, range 16-53; charges = group base + 265 x age
+ 500 x children + right-skewed noise (residual sd about 4,500, about 6 % above +10,000).
"""

from __future__ import annotations

from dataclasses import dataclass

AGE_YOUNG = (18, 19)          # share AGE_YOUNG_SHARE of members, uniform inside
AGE_YOUNG_SHARE = 0.10
AGE_MAIN = (20, 64)           # the rest, uniform inside

SMOKER_SHARE = 0.205
REGION_SHARES = {"northeast": 0.242, "northwest": 0.243, "southeast": 0.272, "southwest": 0.243}
CHILDREN_SHARES = (0.43, 0.24, 0.18, 0.12, 0.02, 0.01)   # 0, 1, 2, 3, 4, 5 children

BMI_MEAN, BMI_SD = 30.7, 6.1
BMI_CLIP = (16.0, 53.0)

# Charges: base by smoking x obesity group + slopes + noise (USD per year).
CHARGE_BASE_NON_SMOKER = -2650.0
CHARGE_BASE_SMOKER = 11500.0
CHARGE_BASE_SMOKER_OBESE = 30200.0
OBESE_BMI = 30.0
CHARGE_PER_YEAR_OF_AGE = 265.0
CHARGE_PER_CHILD = 500.0
CHARGE_FLOOR = 1100.0
# Residual: a tight normal body plus a right tail of unexplained high costs (docs/definitions.md 6:
# residual sd about 4,500, about 6 % of members above +10,000). As in the public table, the
# tail belongs to non-smokers (7.5 % of them, 6 % of everyone) and smokers' body spreads
# wider: smokers' charges are high but closely tied to age and bmi. Simulated with the true
# conditional median (200,000 members): residual sd 4,230, 6.0 % above +10,000, R2 0.86,
# MAE 1,520, high-risk capture 0.89, the public table's range.
NOISE_BODY_MEAN, NOISE_BODY_SD = -1000.0, 500.0
NOISE_SMOKER_SPREAD = 3.0
NOISE_TAIL_SHARE_NON_SMOKER = 0.075
NOISE_TAIL_OFFSET, NOISE_TAIL_MEAN_EXCESS = 10000.0, 5500.0

# Members who enrolled within this many days before a first load have no charges yet.
FIRST_LOAD_NEW_MEMBER_DAYS = 30
FIRST_LOAD_NEW_MEMBER_SHARE = 0.05
MAX_TENURE_DAYS = 3650

# Everyday churn of attributes in a later load (no scenario): share of members re-measured.
BASELINE_BMI_REMEASURE_SHARE = 0.02
BASELINE_BMI_REMEASURE_SD = 1.0

# ZIP3 prefixes drawn per region. Some are HIPAA-restricted prefixes (population under
# 20,000: 036, 059, 790, 821, 884) so that de-identification is exercised for real.
ZIP3_BY_REGION = {
    "northeast": ("021", "036", "100", "104", "112", "146", "191"),
    "northwest": ("059", "590", "821", "837", "972", "980", "995"),
    "southeast": ("303", "322", "331", "352", "372", "402", "708"),
    "southwest": ("752", "770", "787", "790", "852", "871", "884"),
}

FIRST_NAMES = ("James", "Mary", "Robert", "Patricia", "John", "Jennifer", "Michael", "Linda",
               "David", "Elizabeth", "William", "Barbara", "Richard", "Susan", "Joseph", "Jessica",
               "Thomas", "Sarah", "Carlos", "Karen", "Wei", "Nancy", "Ahmed", "Lisa", "Daniel",
               "Maria", "Kevin", "Aisha", "Jose", "Priya", "Brian", "Emily")
LAST_NAMES = ("Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis",
              "Rodriguez", "Martinez", "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson",
              "Thomas", "Taylor", "Moore", "Jackson", "Martin", "Lee", "Perez", "Thompson",
              "White", "Harris", "Sanchez", "Clark", "Nguyen", "Patel", "Kim", "Chen", "Lewis")


@dataclass(frozen=True)
class Shape:
    """How one load's new members and existing members differ from the baseline population."""

    smoker_share_delta: float = 0.0
    northeast_share_delta: float = 0.0
    bmi_delta: float = 0.0
    min_age: int | None = None          # the load covers only members this old or older
    charge_factor: float = 1.0
    delivered_members: int | None = None  # an outage: the load delivers only this many
