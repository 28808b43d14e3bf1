"""Loading a registered model's files for batch scoring (the MLflow side of ``scoring/batch.py``)."""

from __future__ import annotations

from healthcare_mlops.modeling.pyfunc import InsuranceRiskModel


def load_scoring_model(path: str):
    """The model in the MLflow model folder ``path``: this project's ``InsuranceRiskModel`` unwrapped
    from its pyfunc (batch scoring calls its pipeline and explainer directly), any other pyfunc as loaded."""
    import mlflow
    from mlflow.exceptions import MlflowException

    model = mlflow.pyfunc.load_model(path)
    try:
        inner = model.unwrap_python_model()
    except MlflowException:             # not a PythonModel pyfunc: scored through its predict
        return model
    return inner if isinstance(inner, InsuranceRiskModel) else model
