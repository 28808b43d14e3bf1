"""The Databricks Asset Bundle as data: loading, variable resolution, validation, local runs."""
