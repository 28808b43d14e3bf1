"""A local Databricks emulator: runs the bundle's jobs as the Jobs service would (task DAG, Quartz
schedules, run history, run guard) and refuses offline what the CLI and the workspace would refuse
(bundle validation, deploy rules and plan, grant coverage). It reads the bundle model
(``healthcare_mlops.bundle``); the bundle model never imports it."""
