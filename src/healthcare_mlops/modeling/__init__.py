"""The risk model: risk score definition, metrics, candidates, intervals and the MLflow pyfunc."""
