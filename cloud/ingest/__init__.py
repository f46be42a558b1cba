"""The ingestor: sealed batches from MQTT into the S3 archive and PostgreSQL, each acked once.

`pipeline` decides (pure, behind ports), `ports` reaches PostgreSQL and S3, `service` is the
MQTT shell, `main.run_ingestor` the composition root, `replay` rebuilds the database from the
archive. See docs/ingest.md.
"""

from cloud.ingest.pipeline import IngestPorts, Outcome, Reply, Verdict, process_message
from cloud.ingest.replay import ReplaySummary, replay_archive

__all__ = [
    "IngestPorts",
    "Outcome",
    "ReplaySummary",
    "Reply",
    "Verdict",
    "process_message",
    "replay_archive",
]
