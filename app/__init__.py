"""The operations console (Streamlit): entry ``app/main.py``, pages in ``pages/``.

``app.data`` is the only module that reads data (SQL, the model registry, the bundle's
jobs, real-time scoring); ``app.auth`` says who the user is and what they may do;
``app.actions`` performs the actions (approve, reject, acknowledge, run now), each
refused server-side for the wrong role; ``app.charts`` builds the figures (DataFrame in,
figure out); ``app.ui`` holds the small page helpers.
"""
