"""``python -m app.serve run app/main.py ...``: Streamlit, with the libraries every page uses imported first.

Streamlit imports what a page uses when the first visitor's script run reaches it, so the
first visit after a start paid for pandas, pyarrow, DuckDB, delta-rs, plotly and the
console's own modules (seconds on a small machine). ``healthcare-mlops app`` starts the
console through this module instead: those imports happen before the server answers, and
the MLflow client (the registry: Overview, Fairness, Governance and Score read it) is
imported on a background thread while the server starts. The arguments are Streamlit's own
command line (``streamlit.web.cli``).
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _import_registry_client() -> None:
    from mlflow.tracking import MlflowClient  # noqa: F401  # ~2 s of imports, off the first visit's path


def preload() -> None:
    """Import what every page uses; start importing the registry client on a background thread."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    threading.Thread(target=_import_registry_client, name="import-mlflow", daemon=True).start()
    import plotly.graph_objects  # noqa: F401
    import streamlit.elements.plotly_chart  # noqa: F401

    from app import auth, charts, data, queries, ui, vocabulary  # noqa: F401


def main() -> None:
    preload()
    from streamlit.web import cli

    sys.argv = ["streamlit", *sys.argv[1:]]
    cli.main()


if __name__ == "__main__":
    main()
