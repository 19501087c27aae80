-- The demo's ClientForge CRM: contacts and deals with two index findings, and search telemetry.
CREATE TABLE tenants (id uuid PRIMARY KEY, name text NOT NULL);
CREATE TABLE contacts (
  id bigserial PRIMARY KEY,
  tenant_id uuid NOT NULL REFERENCES tenants(id),
  email text NOT NULL,
  first_name text NOT NULL,
  last_name text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
-- the duplicate: two identical indexes on contacts.email (db indexes reports one as covered)
CREATE INDEX idx_contacts_email ON contacts (email);
CREATE INDEX contacts_email_idx ON contacts (email);
-- the missing one: deals.contact_id has no index, and the demo looks deals up by it
CREATE TABLE deals (
  id bigserial PRIMARY KEY,
  tenant_id uuid NOT NULL REFERENCES tenants(id),
  contact_id bigint NOT NULL REFERENCES contacts(id),
  stage text NOT NULL,
  amount numeric(12, 2) NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE search_telemetry (
  id bigserial PRIMARY KEY,
  tenant_id uuid NOT NULL REFERENCES tenants(id),
  user_id uuid NOT NULL,
  query text NOT NULL,
  query_lowercase text NOT NULL,
  type varchar(50) DEFAULT 'all',
  result_count int NOT NULL DEFAULT 0,
  response_time_ms int NOT NULL,
  clicked boolean DEFAULT false,
  clicked_id uuid,
  clicked_index int,
  clicked_at timestamp,
  created_at timestamp DEFAULT now()
);
CREATE INDEX idx_search_telemetry_created ON search_telemetry (created_at DESC);

INSERT INTO tenants VALUES
  ('6f1c2a9e-0000-4000-8000-000000000001', 'Acme Corp'),
  ('6f1c2a9e-0000-4000-8000-000000000002', 'Globex');
INSERT INTO contacts (tenant_id, email, first_name, last_name, created_at)
SELECT (ARRAY['6f1c2a9e-0000-4000-8000-000000000001',
              '6f1c2a9e-0000-4000-8000-000000000002']::uuid[])[1 + n % 2],
       'contact' || n || '@example.com',
       (ARRAY['Ada', 'Grace', 'Linus', 'Barbara', 'Ken'])[1 + n % 5],
       (ARRAY['Lovelace', 'Hopper', 'Torvalds', 'Liskov', 'Thompson'])[1 + n % 5],
       now() - make_interval(days => n % 400)
FROM generate_series(1, 5000) AS n;
INSERT INTO deals (tenant_id, contact_id, stage, amount, updated_at)
SELECT c.tenant_id, c.id,
       (ARRAY['lead', 'qualified', 'proposal', 'won', 'lost'])[1 + (c.id + k) % 5],
       ((c.id * 37 + k * 101) % 50000) / 1.0,
       now() - make_interval(hours => ((c.id + k) % 2000)::int)
FROM contacts c, generate_series(1, 4) AS k;
INSERT INTO search_telemetry (tenant_id, user_id, query, query_lowercase, result_count,
                              response_time_ms, created_at)
SELECT (ARRAY['6f1c2a9e-0000-4000-8000-000000000001',
              '6f1c2a9e-0000-4000-8000-000000000002']::uuid[])[1 + n % 2],
       '00000000-0000-4000-8000-00000000000a',
       q, lower(q),
       CASE WHEN q IN ('Invoce 2024', 'renewel', 'ACME contract') THEN 0 ELSE 3 + n % 40 END,
       40 + (n * 13) % 900,
       now() - make_interval(hours => n % 160)
FROM generate_series(1, 600) AS n,
     LATERAL (SELECT (ARRAY['Invoce 2024', 'renewel', 'ACME contract', 'Ada Lovelace',
                            'pipeline Q3', 'Globex renewal'])[1 + n % 6] AS q) AS pick;
ANALYZE;
