"""Named population shifts that monitoring must detect, each with a documented magnitude.

A scenario changes the *current* population of one as-of date, through new SCD2
versions of existing members and through the members who join with that load.
"""

from __future__ import annotations

from dataclasses import dataclass

from healthcare_mlops.data.population import AGE_MAIN, Shape
from healthcare_mlops.errors import UserError


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    shape: Shape


# min_age 31: members 31-64 are uniform, mean 47.5, about 8 years above the population's 39.6.
AGING_MIN_AGE = 31

SCENARIOS = {
    s.name: s for s in (
        Scenario("baseline", "no shift: 2 % of members re-measured (bmi), new members as usual",
                 Shape()),
        Scenario("smoker_surge", "smoker share +15 percentage points: non-smokers take up "
                 "smoking, new members smoke more often", Shape(smoker_share_delta=0.15)),
        Scenario("aging", f"mean age about +8 years: the load covers members aged "
                 f"{AGING_MIN_AGE}-{AGE_MAIN[1]} and new members join in that range",
                 Shape(min_age=AGING_MIN_AGE)),
        Scenario("region_shift", "northeast share +15 percentage points: members move to the "
                 "northeast (new ZIP), new members join there more often",
                 Shape(northeast_share_delta=0.15)),
        Scenario("bmi_drift", "mean bmi +3: every member is re-measured 3 points heavier, new "
                 "members too", Shape(bmi_delta=3.0)),
        Scenario("cost_inflation", "charges +25 %, features unchanged", Shape(charge_factor=1.25)),
        Scenario("low_volume", "an upstream outage: the load delivers only 30 existing members "
                 "and no new ones", Shape(delivered_members=30)),
    )
}


def get_scenario(name: str) -> Scenario:
    try:
        return SCENARIOS[name]
    except KeyError:
        raise UserError(f"unknown scenario '{name}' (known: {', '.join(SCENARIOS)})") from None
