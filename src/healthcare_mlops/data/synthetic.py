"""Members drawn with numpy from the generator's population parameters (no Spark).

For fast tests and benchmarks that need many small populations (e.g. the fairness rule's
40 seeds): the same shape as ``spark/generator.py`` (docs/definitions.md (the public table)), without
identities, dates or loads.
"""

from __future__ import annotations

import numpy as np

from healthcare_mlops.data import population as pop
from healthcare_mlops.data.contract import REGIONS
from healthcare_mlops.features.definitions import AGE_BANDS, FAMILY_SIZE_CATEGORIES, band


def synthetic_members(n: int, rng: np.random.Generator) -> dict:
    """Model inputs, sex, age band and charges following docs/definitions.md (the public table)."""
    young = rng.random(n) < pop.AGE_YOUNG_SHARE
    age = np.where(young, rng.integers(pop.AGE_YOUNG[0], pop.AGE_YOUNG[1] + 1, n),
                   rng.integers(pop.AGE_MAIN[0], pop.AGE_MAIN[1] + 1, n)).astype(np.int32)
    bmi = np.round(np.clip(rng.normal(pop.BMI_MEAN, pop.BMI_SD, n), *pop.BMI_CLIP), 2)
    children = rng.choice(len(pop.CHILDREN_SHARES), n, p=pop.CHILDREN_SHARES).astype(np.int32)
    smoker = rng.random(n) < pop.SMOKER_SHARE
    region = rng.choice(list(REGIONS), n, p=[pop.REGION_SHARES[r] for r in REGIONS])
    sex = np.where(rng.random(n) < 0.5, "female", "male")
    base = np.where(~smoker, pop.CHARGE_BASE_NON_SMOKER,
                    np.where(bmi >= pop.OBESE_BMI, pop.CHARGE_BASE_SMOKER_OBESE, pop.CHARGE_BASE_SMOKER))
    spread = np.where(smoker, pop.NOISE_SMOKER_SPREAD, 1.0)
    noise = pop.NOISE_BODY_MEAN + pop.NOISE_BODY_SD * spread * rng.standard_normal(n)
    tail = ~smoker & (rng.random(n) < pop.NOISE_TAIL_SHARE_NON_SMOKER)
    noise = np.where(tail, pop.NOISE_TAIL_OFFSET + rng.exponential(pop.NOISE_TAIL_MEAN_EXCESS, n), noise)
    charges = np.maximum(base + pop.CHARGE_PER_YEAR_OF_AGE * age + pop.CHARGE_PER_CHILD * children + noise,
                         pop.CHARGE_FLOOR)
    return {"age": age, "bmi": bmi, "children": children, "smoker": smoker, "region": region, "sex": sex,
            "age_band": band(age, AGE_BANDS), "family_size_category": band(children, FAMILY_SIZE_CATEGORIES),
            "annual_charges": charges}
