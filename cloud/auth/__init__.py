"""Agents' tokens: issued and revoked by the cloud, verified offline by hubs (wire.tokens)."""
