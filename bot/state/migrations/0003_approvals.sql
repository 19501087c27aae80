-- Destructive requests awaiting a second person: durable, so they survive restarts and replicas.
CREATE TABLE forge.approvals (
    id            uuid PRIMARY KEY,
    command       text NOT NULL,
    text          text NOT NULL,
    params        jsonb NOT NULL,
    params_sha256 text NOT NULL,
    requester_id  text NOT NULL,
    channel_id    text NOT NULL,
    preview       text NOT NULL,
    status        text NOT NULL CHECK (status IN ('pending', 'denied', 'cancelled', 'expired', 'executing',
                                                  'succeeded', 'failed', 'outcome_unknown')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    decided_by    text,
    decided_at    timestamptz,
    lease_until   timestamptz,
    finished_at   timestamptz,
    outcome       text,
    message_ts    text
);
CREATE INDEX approvals_open ON forge.approvals (status, expires_at) WHERE status IN ('pending', 'executing');
