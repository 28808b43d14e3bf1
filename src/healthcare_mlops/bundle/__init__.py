"""The Databricks Asset Bundle as data: loading, variable resolution, naming, principals, rendering per target."""
