"""The operations console: ``streamlit run app/main.py``, or through ``app/serve.py`` (what
``healthcare-mlops app`` and Databricks Apps, app.yaml, run: the same, with the pages'
libraries loaded before the first visit).

One ``st.Page`` per file in ``pages/``. Works with the package installed (the venv, a
wheel) and from the bare source folder, as Databricks Apps deploys it (``app/__init__.py``).
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:                       # `import app.*` from the source folder
    sys.path.insert(0, str(ROOT))
import app  # noqa: E402,F401  (puts ./src on the path when the package is not installed)

import streamlit as st  # noqa: E402

from healthcare_mlops.errors import UserError  # noqa: E402

PAGES_DIR = ROOT / "pages"
# (file in pages/, title, icon); the first is the default page.
PAGES = (
    ("overview", "Overview", ":material/dashboard:"),
    ("risk", "Risk", ":material/monitor_heart:"),
    ("fairness", "Fairness", ":material/balance:"),
    ("drift", "Drift", ":material/trending_up:"),
    ("governance", "Governance", ":material/verified:"),
    ("jobs", "Jobs", ":material/schedule:"),
    ("score", "Score", ":material/calculate:"),
)
TITLE = "Healthcare risk console"
ROOT_PAGE = "home"       # the default page's reserved name; it is served at the root


def main() -> None:
    st.set_page_config(page_title=TITLE, page_icon=":material/health_and_safety:", layout="wide")
    pages = [st.Page(PAGES_DIR / f"{name}.py", title=title, icon=icon, url_path=name if index else ROOT_PAGE,
                     default=index == 0) for index, (name, title, icon) in enumerate(PAGES)]
    # Streamlit serves the default page at the root only; its own name in an address (/overview, as in
    # a link written by hand) opens the same page through a hidden entry instead of "Page not found".
    name, title, icon = PAGES[0]
    pages.append(st.Page(PAGES_DIR / f"{name}.py", title=title, icon=icon, url_path=name, visibility="hidden"))
    navigation = st.navigation(pages, position="sidebar")
    try:
        from app import auth, data

        settings = data.console_settings()
        identity = auth.current_identity()
    except UserError as exc:
        st.error(f"The console cannot start: {exc}")
        return
    with st.sidebar:
        st.markdown(f"**{identity.user}**  \nrole: `{identity.role}`")
        facts = data.facts()       # which home or workspace target: two consoles on two homes differ here
        st.caption(f"{facts.where} · {facts.data}" + (f" · `{settings.catalog}.{settings.schema}`"
                                                     if facts.data != f"{settings.catalog}.{settings.schema}" else ""))
    navigation.run()


main()
