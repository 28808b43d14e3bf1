"""Healthcare-insurance risk MLOps.

The package is importable without Spark: only ``healthcare_mlops.spark`` imports
pyspark at module level, so the console and the CLI's light commands stay fast.
"""

__version__ = "0.1.0"
