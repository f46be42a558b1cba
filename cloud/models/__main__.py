"""`python -m cloud.models ...`: the triage model pipeline's command line."""

from cloud.models.cli import models_app

models_app(prog_name="python -m cloud.models")
