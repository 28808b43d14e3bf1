"""Deterministic random columns: a value depends only on (seed, tags, key), never on partitioning.

``F.rand`` depends on how rows fall into partitions; hashing the member's key instead
keeps generated data identical for the same seed on a laptop and on a cluster.
"""

from __future__ import annotations

import math

from pyspark.sql import Column
from pyspark.sql import functions as F

_TWO_53 = float(2**53)


def _lit_or_col(part) -> Column:
    return part if isinstance(part, Column) else F.lit(part)


def uniform(seed: int, *parts) -> Column:
    """U(0, 1) from a 64-bit hash of the seed and ``parts`` (tags, dates, key columns)."""
    hashed = F.xxhash64(F.lit(seed), *[_lit_or_col(p) for p in parts])
    return (F.pmod(hashed, F.lit(2**53)).cast("double") + F.lit(0.5)) / F.lit(_TWO_53)


def normal(seed: int, *parts) -> Column:
    """N(0, 1) by Box-Muller from two independent uniforms."""
    u1 = uniform(seed, *parts, "normal-1")
    u2 = uniform(seed, *parts, "normal-2")
    return F.sqrt(F.lit(-2.0) * F.log(u1)) * F.cos(F.lit(2 * math.pi) * u2)


def categorical(u: Column, values: tuple, shares: tuple) -> Column:
    """Map a uniform to ``values`` with the given shares (cumulative thresholds)."""
    expr = F.lit(values[-1])
    cumulative = 0.0
    thresholds = []
    for value, share in zip(values[:-1], shares[:-1]):
        cumulative += share
        thresholds.append((cumulative, value))
    for threshold, value in reversed(thresholds):
        expr = F.when(u < F.lit(threshold), F.lit(value)).otherwise(expr)
    return expr


def pick(u: Column, values: tuple) -> Column:
    """One of ``values`` with equal probability."""
    index = F.least(F.floor(u * F.lit(len(values))).cast("int"), F.lit(len(values) - 1))
    return F.element_at(F.array(*[F.lit(v) for v in values]), index + F.lit(1))
