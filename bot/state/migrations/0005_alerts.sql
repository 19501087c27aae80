-- Alertmanager notifications: one card per open Alertmanager group, and every alert it ever listed.
CREATE TABLE forge.alert_cards (
    id            bigserial PRIMARY KEY,
    group_key     text NOT NULL,
    channel       text NOT NULL,
    receiver      text NOT NULL DEFAULT '',
    external_url  text NOT NULL DEFAULT '',
    common_labels jsonb NOT NULL DEFAULT '{}',
    ts            text,
    opened_at     timestamptz NOT NULL DEFAULT now(),
    closed_at     timestamptz,
    version       bigint NOT NULL DEFAULT 1,
    rendered      bigint NOT NULL DEFAULT 0,
    listed        integer NOT NULL DEFAULT 0,
    claimed_until timestamptz
);
CREATE UNIQUE INDEX alert_cards_open ON forge.alert_cards (group_key) WHERE closed_at IS NULL;
CREATE INDEX alert_cards_dirty ON forge.alert_cards (id) WHERE version > rendered;

CREATE TABLE forge.alerts (
    fingerprint   text NOT NULL,
    starts_at     timestamptz NOT NULL,
    card_id       bigint NOT NULL REFERENCES forge.alert_cards (id),
    alertname     text NOT NULL,
    status        text NOT NULL CHECK (status IN ('firing', 'resolved')),
    severity      text NOT NULL DEFAULT '',
    labels        jsonb NOT NULL,
    annotations   jsonb NOT NULL,
    generator_url text NOT NULL DEFAULT '',
    ends_at       timestamptz,
    received_at   timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (fingerprint, starts_at)
);
CREATE INDEX alerts_card ON forge.alerts (card_id);
CREATE INDEX alerts_firing ON forge.alerts (starts_at) WHERE status = 'firing';

-- One notification in one round trip: the group's open card (opened when something fires), the alerts upserted by
-- (fingerprint, start), every card whose alerts changed marked for re-rendering, the card closed once nothing fires.
-- Resolutions for a group with no open card only update alerts forge already knows. True when a card changed.
CREATE FUNCTION forge.receive_alerts(p_group text, p_channel text, p_receiver text, p_url text, p_common jsonb,
                                     p_fp text[], p_start timestamptz[], p_name text[], p_status text[],
                                     p_severity text[], p_labels text[], p_notes text[], p_generator text[],
                                     p_end timestamptz[]) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    v_card bigint;
    v_touched bigint[];
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('forge-alerts:' || p_group));
    SELECT id INTO v_card FROM forge.alert_cards WHERE group_key = p_group AND closed_at IS NULL;
    IF v_card IS NULL AND NOT ('firing' = ANY (p_status)) THEN
        WITH changed AS (
            UPDATE forge.alerts a SET status = u.st, ends_at = u.e, annotations = u.n::jsonb, updated_at = now()
              FROM unnest(p_fp, p_start, p_status, p_notes, p_end) AS u(f, s, st, n, e)
             WHERE a.fingerprint = u.f AND a.starts_at = u.s
               AND (a.status, a.ends_at, a.annotations) IS DISTINCT FROM (u.st, u.e, u.n::jsonb)
            RETURNING a.card_id)
        SELECT array_agg(DISTINCT card_id) INTO v_touched FROM changed;
        UPDATE forge.alert_cards SET version = version + 1 WHERE id = ANY (v_touched);
        RETURN v_touched IS NOT NULL;
    END IF;
    IF v_card IS NULL THEN
        INSERT INTO forge.alert_cards (group_key, channel, receiver, external_url, common_labels)
        VALUES (p_group, p_channel, p_receiver, p_url, p_common) RETURNING id INTO v_card;
    END IF;
    WITH changed AS (
        INSERT INTO forge.alerts (fingerprint, starts_at, card_id, alertname, status, severity, labels, annotations,
                                  generator_url, ends_at)
        SELECT f, s, v_card, n, st, sev, l::jsonb, a::jsonb, g, e
          FROM unnest(p_fp, p_start, p_name, p_status, p_severity, p_labels, p_notes, p_generator, p_end)
               AS u(f, s, n, st, sev, l, a, g, e)
        ON CONFLICT (fingerprint, starts_at) DO UPDATE
           SET status = excluded.status, ends_at = excluded.ends_at, annotations = excluded.annotations,
               labels = excluded.labels, updated_at = now()
         WHERE (forge.alerts.status, forge.alerts.ends_at, forge.alerts.annotations)
               IS DISTINCT FROM (excluded.status, excluded.ends_at, excluded.annotations)
        RETURNING card_id)
    SELECT array_agg(DISTINCT card_id) INTO v_touched FROM changed;
    UPDATE forge.alert_cards c
       SET version = c.version + CASE WHEN c.id = ANY (coalesce(v_touched, '{}')) THEN 1 ELSE 0 END,
           closed_at = CASE WHEN c.id = v_card AND NOT EXISTS (
                                 SELECT 1 FROM forge.alerts WHERE card_id = v_card AND status = 'firing')
                            THEN now() ELSE c.closed_at END
     WHERE c.id = v_card OR c.id = ANY (coalesce(v_touched, '{}'));
    RETURN v_touched IS NOT NULL;
END
$$;
