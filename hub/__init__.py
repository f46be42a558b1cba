"""Tecsa Hub: the daemon on a health post's box and the technicians' CLI."""

__version__ = "0.1.0"
