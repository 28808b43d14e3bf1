"""Everything that imports pyspark lives in this subpackage; the rest of the package does not."""
