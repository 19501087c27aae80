-- Scheduled reports: a read command run as its creator every N seconds, or at a UTC time on some days.
-- `last_slot` is the slot last claimed (one UPDATE claims it, so each slot runs once across replicas);
-- `last_status` is the last run's result status, for --on-change; `run_requested_at` is `schedule run`.
CREATE TABLE forge.schedules (
    id               bigserial PRIMARY KEY,
    command          text NOT NULL,
    every_seconds    integer CHECK (every_seconds >= 60),
    at_time          time,
    days             smallint[] NOT NULL DEFAULT '{1,2,3,4,5,6,7}',
    channel_id       text NOT NULL,
    on_change        boolean NOT NULL DEFAULT false,
    creator_id       text NOT NULL,
    created_at       timestamptz NOT NULL,
    paused_at        timestamptz,
    paused_reason    text,
    last_slot        timestamptz,
    last_status      text,
    last_run_at      timestamptz,
    run_requested_at timestamptz,
    run_requested_by text,
    CHECK ((every_seconds IS NULL) <> (at_time IS NULL))
);
