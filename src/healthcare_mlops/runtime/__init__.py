"""The shell's edges: table storage, SQL engines, sessions. Only here do local and Databricks differ."""
