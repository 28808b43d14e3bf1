"""``python -m app.serve run app/main.py ...``: Streamlit, with the libraries every page uses imported first.

Streamlit imports what a page uses when the first visitor's script run reaches it, so the
first visit after a start paid for pandas, pyarrow, DuckDB, delta-rs, plotly and the
console's own modules (seconds on a small machine). ``healthcare-mlops app`` starts the
console through this module instead: those imports happen before the server answers, and
what most pages share (the SQL engine, and the MLflow registry client that Overview,
Fairness, Governance and Score read: ~2 s of imports) is built on a background thread while
the server starts (``data.warm_up``). The arguments are Streamlit's own
command line (``streamlit.web.cli``).
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def preload() -> None:
    """Import what every page uses; build what most pages share on a background thread."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import altair  # noqa: F401
    import streamlit.elements.vega_charts  # noqa: F401

    from app import auth, charts, data, queries, ui, vocabulary  # noqa: F401
    threading.Thread(target=data.warm_up, name="console-warm-up", daemon=True).start()


def main() -> None:
    preload()
    from streamlit.web import cli

    sys.argv = ["streamlit", *sys.argv[1:]]
    cli.main()


if __name__ == "__main__":
    main()
