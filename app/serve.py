"""``python -m app.serve run app/main.py ...``: Streamlit, with the libraries every page uses imported first.

Streamlit imports what a page uses when the first visitor's script run reaches it, so the
first visit after a start paid for pandas, pyarrow, DuckDB, delta-rs, the chart library and
the console's own modules (seconds on a small machine). ``healthcare-mlops app`` (and
app.yaml on Databricks Apps) starts the console through this module instead: those imports
happen, and what most pages share is built (``data.warm_up``: the SQL engine, and the MLflow
registry client that Overview, Fairness, Governance and Score read, ~2 s of imports), before
the server answers. Then everything loaded so far is moved out of the garbage collector's
reach (``gc.freeze``): those objects live as long as the process, and a full collection no
longer walks them. The arguments are Streamlit's own command line (``streamlit.web.cli``).
"""

from __future__ import annotations

import gc
import logging
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


class _DecorationTimeWarning(logging.Filter):
    """Drops Streamlit's "No runtime found, using MemoryCacheStorageManager": importing the pages' modules
    before the server starts checks each ``st.cache_data`` decoration against a stand-in store and logs
    it once per cached function. Harmless (the real store is chosen at the first call, after the start),
    and a warning at every start that means nothing teaches people to ignore warnings."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "No runtime found" not in record.getMessage()


def preload() -> None:
    """Import what every page uses and build what most pages share, then freeze it for the collector."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import altair  # noqa: F401
    import streamlit.elements.vega_charts  # noqa: F401
    import streamlit.runtime.caching.cache_data_api as cache_data_api

    quiet = _DecorationTimeWarning()
    cache_data_api._LOGGER.addFilter(quiet)
    try:
        from app import auth, charts, data, queries, ui, vocabulary  # noqa: F401
    finally:
        cache_data_api._LOGGER.removeFilter(quiet)
    try:
        data.warm_up()
    except Exception as exc:        # an optimisation only: the first visit meets the cause and shows it
        print(f"console warm-up skipped: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
    gc.collect()
    gc.freeze()


def main() -> None:
    preload()
    from streamlit.web import cli

    sys.argv = ["streamlit", *sys.argv[1:]]
    cli.main()


if __name__ == "__main__":
    main()
