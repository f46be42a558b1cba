"""Tecsa Hub: the daemon on a health post's box and the technicians' CLI."""
