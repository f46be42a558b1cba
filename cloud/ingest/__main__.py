"""`python -m cloud.ingest`: the ingestor, as `tecsa-cloud ingest` runs it."""

import typer

from cloud.ingest.cli import ingest_command

if __name__ == "__main__":
    typer.run(ingest_command)
