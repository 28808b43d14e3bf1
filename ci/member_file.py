"""Write a member file in the public insurance-charges format, drawn from the generator's
population (data/synthetic.py): what a new user brings, for the walkthrough CI runs."""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

from healthcare_mlops.data.synthetic import synthetic_members

HEADER = ("age", "sex", "bmi", "children", "smoker", "region", "charges")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", type=Path)
    parser.add_argument("--members", type=int, default=1338, help="rows (default: the public table's 1,338)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    members = synthetic_members(args.members, np.random.default_rng(args.seed))
    with args.path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(HEADER)
        for i in range(args.members):
            writer.writerow([members["age"][i], members["sex"][i], members["bmi"][i], members["children"][i],
                             "yes" if members["smoker"][i] else "no", members["region"][i],
                             round(float(members["annual_charges"][i]), 2)])


if __name__ == "__main__":
    main()
