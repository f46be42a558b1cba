"""The reference phone client: the specification, in code, of the mobile app's sync layer.

A health agent's phone keeps every record revision in a local SQLite queue (`phone.queue`), finds
the health post's hub by zeroconf (`phone.discovery`), talks to it over TLS pinned to the
fingerprint the hub advertises (`phone.client`) and syncs in chunks, retrying with backoff, never
marking a record synced before the hub's answer for that record (`phone.sync`). docs/phone-client.md
is the written form of this behaviour. Imports `wire` only: never hub, cloud or demo.
"""
