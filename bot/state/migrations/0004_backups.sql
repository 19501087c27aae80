-- The backup catalog: every dump forge made, with what is needed to trust it later (checksum, size, the row
-- counts of the snapshot it holds) and what became of it (verified, copied off-site, pruned).
CREATE TABLE forge.backups (
    id           bigserial PRIMARY KEY,
    file         text NOT NULL UNIQUE,
    kind         text NOT NULL CHECK (kind IN ('manual', 'scheduled', 'drill', 'safety')),
    source       text NOT NULL,
    created_at   timestamptz NOT NULL,
    size_bytes   bigint NOT NULL,
    sha256       text NOT NULL,
    duration_ms  integer NOT NULL,
    row_counts   jsonb NOT NULL,
    objects      jsonb NOT NULL,
    actor_id     text NOT NULL,
    verified_at  timestamptz,
    verified_ok  boolean,
    pruned_at    timestamptz,
    offsite_url  text,
    offsite_at   timestamptz
);
CREATE INDEX backups_live ON forge.backups (created_at DESC) WHERE pruned_at IS NULL;

-- The nightly schedule: one row. `last_slot` is the scheduled time last claimed, so each slot runs once.
CREATE TABLE forge.backup_schedule (
    id                 integer PRIMARY KEY CHECK (id = 1),
    at_time            time,
    enabled_at         timestamptz,
    updated_by         text NOT NULL,
    last_slot          timestamptz,
    missed_reported_at timestamptz
);
