-- Home tabs: who opened forge's Home tab (kept current by every replica) and when each was last
-- published, so all replicas together publish at most once per user per window.
CREATE TABLE forge.home_tabs (
    user_id      text PRIMARY KEY,
    opened_at    timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz
);
CREATE INDEX home_tabs_opened ON forge.home_tabs (opened_at);
