"""The S3 archive of sealed batches: the source of truth from which PostgreSQL can be rebuilt."""
