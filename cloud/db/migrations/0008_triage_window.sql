-- 0008: a triage result says the window its hub gathered vitals over (TriageResult.window_s,
-- body schema version 2), so the cloud rebuilds its inputs with the hub's own window instead of
-- assuming the default hour (cloud/models/full.py, docs/models/agreement.md). Null: a result
-- from before the field, rebuilt with the default hour as before.
ALTER TABLE triage_results
    ADD COLUMN window_s integer CHECK (window_s BETWEEN 60 AND 86400);
