-- The audit trail: append-only, each row chained to the previous one by a SHA-256 hash.
CREATE TABLE forge.audit_log (
    id          bigserial PRIMARY KEY,
    at          timestamptz NOT NULL,
    request_id  text NOT NULL,
    event       text NOT NULL,
    actor_id    text NOT NULL,
    channel_id  text,
    source      text NOT NULL,
    command     text,
    text        text NOT NULL,
    outcome     text NOT NULL,
    duration_ms integer,
    detail      jsonb NOT NULL DEFAULT '{}',
    prev_hash   text NOT NULL,
    hash        text NOT NULL UNIQUE
);
CREATE INDEX audit_log_actor ON forge.audit_log (actor_id, id DESC);
CREATE INDEX audit_log_command ON forge.audit_log (command, id DESC);

CREATE FUNCTION forge.refuse_audit_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'forge.audit_log is append-only: % refused', TG_OP;
END
$$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON forge.audit_log
    FOR EACH ROW EXECUTE FUNCTION forge.refuse_audit_change();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON forge.audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION forge.refuse_audit_change();

-- Slack deliveries already handled (event ids, request signatures): a retry or replay runs nothing.
CREATE TABLE forge.slack_deliveries (
    key     text PRIMARY KEY,
    seen_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX slack_deliveries_seen ON forge.slack_deliveries (seen_at);
