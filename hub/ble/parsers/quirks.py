"""Names of the device quirks the parsers know; a device profile lists the ones its device needs.

A quirk changes decoding only when the caller passes its name; every parser is strict by default.

* ``beurer_bm85`` (Blood Pressure Measurement 0x2A35 and Intermediate Cuff Pressure 0x2A36):
  Beurer BM85 cuffs set reserved flag bits (bit 6 seen), always send the user id byte even when
  flag bit 3 is clear, send the pulse rate SFLOAT and the measurement status big-endian, and send
  0x0000 for the mean arterial pressure they do not compute (decoded as no value). Capture BP10
  in docs: ``56 6A 00 47 00 00 00 EA 07 08 0B 12 1F 00 00 3F 00 00 00`` = 106/71 mmHg, pulse 63,
  user 0, 2026-08-11 18:31:00.
"""

from __future__ import annotations

BEURER_BM85 = "beurer_bm85"

KNOWN_QUIRKS = frozenset({BEURER_BM85})
"""Every quirk name a parser acts on; profiles and the CLI validate names against it."""
