"""The phones' local API: FastAPI over TLS with the hub's own certificate, tokens from the cloud."""
