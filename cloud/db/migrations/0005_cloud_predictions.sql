-- 0005: the cloud's full-precision scoring of what hubs triaged (cloud/models/full.py,
-- docs/models/agreement.md). One row per stored triage result, written once (the primary key
-- makes scoring idempotent: a second scorer's insert is a no-op).
--
-- status 'scored': the cloud rebuilt the feature row from the referenced readings, ran the float
-- model of the same version and applied the same safety rule; cloud_band and agree are set.
-- status 'not_scorable': it could not (reason: readings_missing, no_readings, unknown_model,
-- news2_only, invalid_vitals); such rows never count in the agreement.
-- input_match says whether the rebuilt row has the hub's input hash: false means the hub used
-- inputs the cloud does not hold (an agent's observations, the patient's age), so a
-- disagreement there may come from the inputs, not the model.
CREATE TABLE cloud_predictions (
    triage_id          uuid PRIMARY KEY REFERENCES triage_results (id),
    model_version      text NOT NULL,
    computed_at        timestamptz NOT NULL,     -- the hub's triage time (the window's clock)
    status             text NOT NULL CHECK (status IN ('scored', 'not_scorable')),
    reason             text,
    cloud_probability  double precision CHECK (cloud_probability BETWEEN 0 AND 1),
    cloud_band         text CHECK (cloud_band IN ('low', 'low_medium', 'medium', 'high')),
    edge_band          text NOT NULL CHECK (edge_band IN ('low', 'low_medium', 'medium', 'high')),
    agree              boolean,
    input_match        boolean,
    cloud_input_hash   text,
    scored_at          timestamptz NOT NULL DEFAULT now(),
    CHECK ((status = 'scored') = (cloud_band IS NOT NULL AND agree IS NOT NULL
                                  AND cloud_probability IS NOT NULL AND input_match IS NOT NULL)),
    CHECK ((status = 'not_scorable') = (reason IS NOT NULL))
);
CREATE INDEX cloud_predictions_version_time ON cloud_predictions (model_version, computed_at);
-- Pending results are found by the hub's triage time within a lookback (the ingestor's scorer),
-- so that finding them does not scan every result ever stored.
CREATE INDEX triage_results_computed ON triage_results (computed_at);
