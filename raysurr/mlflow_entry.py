"""The code MLflow runs to load raysurr's pyfunc model (models from code: no pickled object in the model)."""

import mlflow

from raysurr.mlflow_model import SurrogateModel

mlflow.models.set_model(SurrogateModel())
