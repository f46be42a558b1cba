from __future__ import annotations

import pytest
from ingest_support import BatchMaker, hub_key, register, unique_hub


@pytest.fixture
def maker(db):
    """A registered hub (unique id, fixed key) and its batch sealer."""
    hub_id = unique_hub()
    register(db, hub_id, hub_key(1))
    return BatchMaker(hub_id, hub_key(1))
