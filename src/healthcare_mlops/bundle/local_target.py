"""The local pseudo-target: the laptop runtime, which is not a workspace and so not in databricks.yml.

Its values override the bundle's variable defaults; this is the only place they are
written. Settings, the bundle resolver and the runner read them from here.
"""

LOCAL_TARGET = "local"

LOCAL_OVERRIDES = {
    "catalog": "hc_local",
    "schema": "insurance",
    "approval_mode": "auto",
}
