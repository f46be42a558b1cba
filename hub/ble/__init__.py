"""Bluetooth LE: device profiles, pure GATT parsers, the bleak central and virtual devices."""
