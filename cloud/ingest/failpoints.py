"""Failpoints: crash the process at a named step, to prove that a crash there loses nothing.

`TECSA_FAILPOINT=after_archive tecsa-cloud ingest` exits with status 137 (as if SIGKILLed)
right after the first batch's sealed bytes are in S3 and before its transaction runs;
`after_store` right after the commit and before the ack. Tests use them; never set in production.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

ENV_VAR = "TECSA_FAILPOINT"
NAMES = frozenset({"after_archive", "after_store"})
CRASH_STATUS = 137  # 128 + SIGKILL: what a supervisor sees for `kill -9`


def failpoint_from_env(environ: Mapping[str, str]) -> Callable[[str], None] | None:
    """A failpoint hook for the pipeline when `TECSA_FAILPOINT` names one, else None."""
    wanted = environ.get(ENV_VAR, "").strip()
    if not wanted:
        return None
    if wanted not in NAMES:
        raise ValueError(f"{ENV_VAR}={wanted!r}: known failpoints are {', '.join(sorted(NAMES))}")

    def hit(name: str) -> None:
        if name == wanted:
            os._exit(CRASH_STATUS)  # no cleanup, no flush: a crash is the point

    return hit
