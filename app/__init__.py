"""The operations console (Streamlit): entry ``app/main.py``, pages in ``pages/``.

``app.data`` is the only module that reads data (SQL, the model registry, the bundle's
jobs, real-time scoring); ``app.auth`` says who the user is and what they may do;
``app.actions`` performs the actions (approve, reject, acknowledge, run now), each
refused server-side for the wrong role; ``app.charts`` builds the figures (DataFrame in,
figure out); ``app.ui`` holds the small page helpers.

Imported first by both entry points (``app/main.py``, ``app/serve.py``), it makes the
product's core importable where Databricks Apps deploys the bare source folder: then
``./src`` goes on the import path.
"""

import sys
from pathlib import Path

try:
    import healthcare_mlops.errors  # noqa: F401
except ImportError:                                  # not installed: the source folder's copy
    sys.modules.pop("healthcare_mlops", None)        # at most a namespace remnant of an install
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
