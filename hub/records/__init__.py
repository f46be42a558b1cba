"""Medical records from phones: validation, bulk-sync decisions, and (to come) their store."""
