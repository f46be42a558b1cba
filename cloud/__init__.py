"""TecsaS3 cloud: the ingestor, the API and the operators' CLI."""
