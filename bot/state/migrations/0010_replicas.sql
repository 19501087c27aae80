-- Replicas: who is alive, who holds the background lease, and what each has acked but not answered.
CREATE TABLE forge.replicas (
    id         text PRIMARY KEY,
    started_at timestamptz NOT NULL DEFAULT now(),
    seen_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE forge.leases (
    name        text PRIMARY KEY,
    holder      text NOT NULL,
    acquired_at timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL
);

-- A row from the moment a Slack request is acked until it is answered; replica NULL = handed back.
CREATE TABLE forge.inflight (
    request_id   text PRIMARY KEY,
    replica      text,
    kind         text NOT NULL,
    actor_id     text NOT NULL,
    channel_id   text NOT NULL,
    text         text NOT NULL,
    response_url text,
    thread_ts    text,
    acked_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX inflight_replica ON forge.inflight (replica);
