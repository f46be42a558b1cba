-- 0007: late inputs are retried by the scorer itself (cloud/models/full.py, docs/models/agreement.md).
-- A result whose readings or records had not reached the cloud when it was scored is stored as
-- not_scorable (readings_missing, inputs_missing) with the next moment it may be retried
-- (retry_at, the scorer's clock) and how many times it was tried (attempts). Each retry doubles
-- the wait; after the last attempt retry_at is null and the verdict stays (an operator may still
-- force a retry with `tecsa-cloud models score --retry-missing`).
ALTER TABLE cloud_predictions
    ADD COLUMN attempts integer NOT NULL DEFAULT 1 CHECK (attempts >= 1),
    ADD COLUMN retry_at timestamptz,
    ADD CONSTRAINT cloud_predictions_retry_only_unscored
        CHECK (retry_at IS NULL OR status = 'not_scorable');
-- The scorer's retry pass: the due verdicts, oldest due first, without scanning the table.
CREATE INDEX cloud_predictions_retry ON cloud_predictions (retry_at) WHERE retry_at IS NOT NULL;
-- What the cloud held of a retryable verdict's inputs when it was given (the result's readings
-- found + the patient's records from that hub): a different count means inputs arrived since,
-- and the verdict is retried on the next run without waiting for retry_at.
ALTER TABLE cloud_predictions ADD COLUMN inputs_seen bigint;
