"""Which members are held out and which fold each member is in: a salted hash of the member key.

Splits and folds never depend on row order (docs/definitions.md): the same member with the
same salt always lands in the same place, whatever day the data was loaded or how Spark
partitioned it, and adding members never moves an existing one. The salt is recorded with
the run, so a version can be rebuilt from its lineage; a new salt draws a new split.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

MEMBER_KEY = "patient_natural_key"     # the de-identified key the features table carries
DEFAULT_SALT = "insurance-risk-split-v1"
_BUCKETS = 2 ** 64


def _unit(keys, salt: str, purpose: str) -> np.ndarray:
    """A number in [0, 1) per key, uniform and stable: blake2b of salt, purpose and key."""
    prefix = f"{salt}\x1f{purpose}\x1f".encode()
    return np.fromiter((int.from_bytes(hashlib.blake2b(prefix + str(k).encode(), digest_size=8).digest(), "big")
                        / _BUCKETS for k in keys), dtype=float, count=len(keys))


def held_out_mask(keys, salt: str, test_share: float) -> np.ndarray:
    """True for members in the held-out test split (about ``test_share`` of them)."""
    return _unit(keys, salt, "test") < test_share


def fold_ids(keys, salt: str, folds: int) -> np.ndarray:
    """The cross-validation fold (0 .. folds-1) of each member."""
    return np.minimum((_unit(keys, salt, "fold") * folds).astype(int), folds - 1)


def sample_mask(keys, salt: str, rows: int) -> np.ndarray:
    """True for the ``rows`` members with the smallest selection hash (all of them when there are fewer).

    Nested: the sample of ``n`` rows is inside the sample of ``m > n`` rows, so a learning
    curve over several sizes adds members without swapping any."""
    if len(keys) <= rows:
        return np.ones(len(keys), dtype=bool)
    order = np.argsort(_unit(keys, salt, "selection"), kind="stable")
    mask = np.zeros(len(keys), dtype=bool)
    mask[order[:rows]] = True
    return mask


def member_keys(frame: pd.DataFrame) -> pd.Series:
    """The member keys of a training frame, or a ValueError when the frame has none."""
    if MEMBER_KEY not in frame.columns:
        raise ValueError(f"the training frame has no member key column '{MEMBER_KEY}' to split by")
    keys = frame[MEMBER_KEY]
    if keys.isna().any() or keys.duplicated().any():
        raise ValueError(f"'{MEMBER_KEY}' must be present and unique per row to split by it")
    return keys.astype(str)
