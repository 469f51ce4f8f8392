"""The trained surrogate as an MLflow pyfunc model: a parameter table in, fields out (imported only with MLflow).

`Tracker.log_model` saves it as the run's `model` artifact, so that

    mlflow.pyfunc.load_model(f"runs:/{run_id}/model").predict(table)

gives the fields of a table of parameter sets without the run folder (raysurr must be installed: it renders the
simulator's inputs from the parameters).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import mlflow.pyfunc
import numpy as np
import pandas as pd
import torch
from mlflow.models import ModelSignature
from mlflow.types.schema import ColSpec, Schema, TensorSpec

import raysurr
from raysurr.predictor import Predictor, load


class SurrogateModel(mlflow.pyfunc.PythonModel):
    """Predicts fields [n, *output_shape] from a table of parameter sets (`Predictor.predict`).

    Its methods carry no type hints on purpose: MLflow reads them as a schema of their own; the model's signature
    (a table of the simulator's parameters in, a tensor out) is given when it is saved."""

    def load_context(self, context):
        folder = Path(context.artifacts["checkpoints"])
        self.predictor = load(next(p for p in sorted(folder.iterdir()) if "_member" not in p.name))

    def predict(self, context, model_input, params=None):
        return self.predictor.predict(model_input, **(params or {}))


def signature(predictor: Predictor) -> ModelSignature:
    """A table of the simulator's parameters (doubles) in, a float32 tensor [n, *output_shape] out."""
    inputs = Schema([ColSpec("double", name) for name in predictor.parameter_names])
    outputs = Schema([TensorSpec(np.dtype(np.float32), (-1, *predictor.output_shape))])
    return ModelSignature(inputs=inputs, outputs=outputs)


def example(predictor: Predictor) -> pd.DataFrame:
    """One parameter set in the middle of the training labels' ranges (the simulator's, where none are known)."""
    declared = {p.name: (p.low, p.high) for p in predictor.renderer.parameters}
    middle = {name: sum(predictor.ranges.get(name, declared[name])) / 2 for name in predictor.parameter_names}
    params = predictor.renderer.check_parameters(np.array([[middle[n] for n in predictor.parameter_names]]).round())
    return pd.DataFrame(params, columns=list(predictor.parameter_names))


def save(checkpoint: Path, path: Path) -> Path:
    """Save the pyfunc model of a checkpoint (with its ensemble members, for the spread) into the folder `path`."""
    predictor = load(checkpoint, device="cpu")
    requirements = [f"raysurr=={raysurr.__version__}", f"torch=={torch.__version__}"]  # not inferred: no subprocess
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "checkpoints"
        for source in [checkpoint, *sorted(checkpoint.parent.glob(f"{checkpoint.name}_member*"))]:
            shutil.copytree(source, folder / source.name)
        # models from code (the file below is run at load), not a pickled object
        mlflow.pyfunc.save_model(str(path), python_model=str(Path(__file__).with_name("mlflow_entry.py")),
                                 artifacts={"checkpoints": str(folder)}, signature=signature(predictor),
                                 input_example=example(predictor), pip_requirements=requirements)  # fmt: skip
    return path
