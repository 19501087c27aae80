-- Break-glass notices: one row per channel, queued by `forge run --break-glass`; sent at once when
-- Slack answers, else by the courier of a running `forge serve`. A claim keeps two senders apart.
CREATE TABLE forge.break_glass_notices (
    id            bigserial PRIMARY KEY,
    channel_id    text NOT NULL,
    notice        jsonb NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    claimed_until timestamptz,
    attempts      integer NOT NULL DEFAULT 0,
    sent_at       timestamptz,
    message_ts    text
);
CREATE INDEX break_glass_notices_unsent ON forge.break_glass_notices (id) WHERE sent_at IS NULL;
