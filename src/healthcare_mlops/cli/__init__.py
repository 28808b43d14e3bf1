"""The ``healthcare-mlops`` command tree."""
