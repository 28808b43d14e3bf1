"""The result states of a job run and of a task run, in the Databricks Jobs service's words.

Part of the bundle model: the local emulator records them (``emulator/run_history.py``),
the workspace reports them (``runtime/workspace_runs.py``), a launcher checks them.
"""

SUCCEEDED = "SUCCEEDED"
FAILED = "FAILED"
UPSTREAM_FAILED = "UPSTREAM_FAILED"
TIMED_OUT = "TIMED_OUT"
CANCELED = "CANCELED"
EXCLUDED = "EXCLUDED"      # a task whose run_if condition was not met
INTERRUPTED = "INTERRUPTED"  # the runner died mid-run; recorded at its next start
STATUSES = (SUCCEEDED, FAILED, UPSTREAM_FAILED, TIMED_OUT, CANCELED, EXCLUDED, INTERRUPTED)
