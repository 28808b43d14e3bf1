"""The model registry adapter: the MLflow calls governance makes, on one registered model.

Governance (``governance/``) never imports MLflow: it is handed a ``ModelRegistry`` built
once per process by the composition root (``composition.build_runtime``), which configured
MLflow's process-wide tracking and registry URIs before. A "not found" answer is None
(``find_in_registry``); every other registry failure is raised.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import pandas as pd

from healthcare_mlops.runtime.mlflow_setup import configure_mlflow, find_in_registry
from healthcare_mlops.settings import Settings


@dataclass(frozen=True)
class ModelRegistry:
    """One registered model (``model_name``) in the registry ``connect()``'s client talks to.

    The client is made on the first registry call: a request refused before it (a malformed
    version) opens no registry."""

    model_name: str
    connect: Callable[[], Any]          # -> mlflow.tracking.MlflowClient, MLflow configured

    @cached_property
    def client(self):
        return self.connect()

    # -- versions and aliases --------------------------------------------------------
    def version(self, version) -> Any | None:
        """The registered ``ModelVersion``, or None when it does not exist."""
        return find_in_registry(self.client.get_model_version, self.model_name, str(version))

    def aliased(self, alias: str) -> Any | None:
        """The ``ModelVersion`` the alias points at, or None."""
        return find_in_registry(self.client.get_model_version_by_alias, self.model_name, alias)

    def alias(self, alias: str) -> str | None:
        """The version number the alias points at, or None."""
        found = self.aliased(alias)
        return None if found is None else str(found.version)

    def set_alias(self, alias: str, version: str) -> None:
        self.client.set_registered_model_alias(self.model_name, alias, str(version))

    def delete_alias(self, alias: str) -> None:
        self.client.delete_registered_model_alias(self.model_name, alias)

    def versions(self) -> list:
        """Every registered version (empty when the model is not registered)."""
        if find_in_registry(self.client.get_registered_model, self.model_name) is None:
            return []
        return list(self.client.search_model_versions(f"name = '{self.model_name}'"))

    # -- tags ------------------------------------------------------------------------
    def version_tags(self, version) -> dict:
        return dict(self.client.get_model_version(self.model_name, str(version)).tags or {})

    def set_version_tag(self, version, key: str, value: str) -> None:
        self.client.set_model_version_tag(self.model_name, str(version), key, value)

    def model_tags(self) -> dict | None:
        """The registered model's tags; None when the model is not registered."""
        model = find_in_registry(self.client.get_registered_model, self.model_name)
        return None if model is None else dict(model.tags or {})

    def set_model_tag(self, key: str, value: str) -> None:
        self.client.set_registered_model_tag(self.model_name, key, value)

    def delete_model_tag(self, key: str) -> None:
        self.client.delete_registered_model_tag(self.model_name, key)

    # -- runs, descriptions, artifacts ----------------------------------------------
    def run(self, run_id: str):
        """The MLflow run (its ``data.params``, ``data.metrics``, ``data.tags``)."""
        return self.client.get_run(run_id)

    def describe(self, version, run_id: str, text: str, file_name: str) -> None:
        """``text`` as the version's description and as the run's artifact ``file_name``."""
        self.client.log_text(run_id, text, file_name)
        self.client.update_model_version(self.model_name, str(version), description=text)

    def run_json(self, run_id: str, path: str):
        """A JSON artifact of the run."""
        import mlflow

        return mlflow.artifacts.load_dict(f"runs:/{run_id}/{path}")

    def run_parquet(self, run_id: str, path: str) -> pd.DataFrame:
        """A parquet artifact of the run."""
        import mlflow

        return pd.read_parquet(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=path))

    def run_pickle(self, run_id: str, path: str):
        """A pickled artifact of the run (written by this product's training, trusted as the model is)."""
        import pickle  # nosec B403  # only this product's own registry is read

        import mlflow

        local = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=path)
        with open(local, "rb") as handle:
            return pickle.load(handle)  # nosec B301  # an artifact this product's training logged

    # -- models ----------------------------------------------------------------------
    def uri(self, version) -> str:
        return f"models:/{self.model_name}/{version}"

    def inputs(self, version) -> list[str]:
        """The columns the version takes (not the prohibited fields it declares to refuse them)."""
        import mlflow

        from healthcare_mlops.modeling.pyfunc import model_inputs

        info = mlflow.models.get_model_info(self.uri(version))
        return model_inputs(info.signature.inputs if info.signature else None, info.metadata) or []

    def load(self, version):
        """The version as a loaded pyfunc model (``predict``, ``unwrap_python_model``)."""
        import mlflow

        return mlflow.pyfunc.load_model(self.uri(version))

    def input_example(self, version):
        """The version's logged input example (None when it has none)."""
        import mlflow
        from mlflow.models import Model

        local = mlflow.artifacts.download_artifacts(self.uri(version))
        return Model.load(local).load_input_example(local)


def model_registry(settings: Settings, connect: Callable[[], Any] | None = None) -> ModelRegistry:
    """The target's registered model, through ``connect()``'s client (default: MLflow configured for the target)."""
    return ModelRegistry(settings.model_name, connect or (lambda: configure_mlflow(settings)))
