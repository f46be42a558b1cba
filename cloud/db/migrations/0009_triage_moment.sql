-- 0009: a triage result says its case's moment (TriageResult.at, body schema version 2): the
-- cloud rebuilds its inputs as of that moment. A result an agent's record caused may list no
-- reading at all, or only readings older than the record; before, the moment was always the
-- newest listed reading's. Null: a result from before the field, rebuilt as before.
ALTER TABLE triage_results ADD COLUMN at timestamptz;
