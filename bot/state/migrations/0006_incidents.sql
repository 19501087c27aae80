-- Incidents: the record, its checklist items and its timeline. `version` moves on every change and `rendered`
-- follows once Slack shows it, so the board re-renders after restarts and replicas never post twice.
CREATE TABLE forge.incidents (
    id               bigserial PRIMARY KEY,
    title            text NOT NULL,
    description      text NOT NULL DEFAULT '',
    component        text NOT NULL DEFAULT '',
    severity         text NOT NULL CHECK (severity IN ('P0', 'P1', 'P2', 'P3')),
    status           text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'resolved')),
    commander        text NOT NULL,
    channel          text NOT NULL,
    own_channel      boolean NOT NULL DEFAULT false,
    card_ts          text,
    declared_at      timestamptz NOT NULL DEFAULT now(),
    resolved_at      timestamptz,
    summary          text NOT NULL DEFAULT '',
    forced_reason    text,
    version          bigint NOT NULL DEFAULT 1,
    rendered         bigint NOT NULL DEFAULT 0,
    claimed_until    timestamptz
);
CREATE INDEX incidents_open ON forge.incidents (declared_at) WHERE status = 'open';
CREATE INDEX incidents_dirty ON forge.incidents (id) WHERE version > rendered;
CREATE UNIQUE INDEX incidents_card ON forge.incidents (channel, card_ts) WHERE card_ts IS NOT NULL;

CREATE TABLE forge.incident_items (
    incident_id bigint NOT NULL REFERENCES forge.incidents (id),
    position    integer NOT NULL,
    key         text NOT NULL,
    title       text NOT NULL,
    detail      text NOT NULL DEFAULT '',
    commands    jsonb NOT NULL DEFAULT '[]',
    marks       text NOT NULL DEFAULT '' CHECK (marks IN ('', 'acknowledge', 'mitigate')),
    done_by     text,
    done_at     timestamptz,
    assignee    text,
    message_ts  text,
    version     bigint NOT NULL DEFAULT 1,
    rendered    bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (incident_id, position),
    UNIQUE (incident_id, key)
);

CREATE TABLE forge.incident_events (
    id          bigserial PRIMARY KEY,
    incident_id bigint NOT NULL REFERENCES forge.incidents (id),
    at          timestamptz NOT NULL DEFAULT now(),
    kind        text NOT NULL,
    actor       text NOT NULL,
    text        text NOT NULL,
    detail      jsonb NOT NULL DEFAULT '{}',
    shown       boolean NOT NULL DEFAULT true
);
CREATE INDEX incident_events_of ON forge.incident_events (incident_id, id);
CREATE INDEX incident_events_unshown ON forge.incident_events (incident_id) WHERE NOT shown;
