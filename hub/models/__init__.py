"""Signed triage models on the hub: verify, self-test, activate atomically, roll back."""
