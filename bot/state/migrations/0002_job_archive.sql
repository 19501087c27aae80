-- Jobs removed from ClientForge's queues, archived whole before removal: nothing is lost.
-- `record` is the job hash's field/value list as MessagePack, stored as Redis packed it and lz4-compressed:
-- archiving must keep pace with the removal of 100,000 jobs. `dlq archive-export` turns it into JSON Lines.
CREATE TABLE forge.archive_batches (
    id          uuid PRIMARY KEY,
    queue       text NOT NULL,
    reason      text NOT NULL,
    actor_id    text NOT NULL,
    approval_id uuid,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX archive_batches_queue ON forge.archive_batches (queue, created_at DESC);

CREATE TABLE forge.job_archive (
    batch_id    uuid NOT NULL REFERENCES forge.archive_batches (id),
    queue       text NOT NULL,
    job_id      text NOT NULL,
    name        text,
    record      bytea COMPRESSION lz4 NOT NULL,
    archived_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (batch_id, job_id)
);
