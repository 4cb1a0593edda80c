-- Application-like tables next to pgbench's, for scripts/bench.sh (shape from
-- shared/reference/peers-and-performance.md §2.1): identity keys, a unique email, an FK, btree indexes,
-- jsonb with hex strings under a GIN jsonb_path_ops index, 1 KB text documents and a view.
-- Deterministic (generate_series + md5), so every run restores the same bytes.
-- psql variables: users, events, docs (row counts).

\set ON_ERROR_STOP 1
SET client_min_messages = warning;

DROP VIEW IF EXISTS app_event_kinds;
DROP TABLE IF EXISTS app_events, app_docs, app_users;

CREATE TABLE app_users (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  email text NOT NULL UNIQUE,
  created_at timestamptz NOT NULL,
  profile jsonb NOT NULL
);
INSERT INTO app_users (email, created_at, profile)
SELECT 'user' || g || '@example.com',
       timestamptz '2025-01-01 00:00:00+00' + g * interval '37 seconds',
       jsonb_build_object('name', 'User ' || g,
                          'plan', (ARRAY['free', 'pro', 'team'])[1 + g % 3],
                          'avatar', md5(g::text),
                          'score', g % 1000)
FROM generate_series(1, :users) AS g;
CREATE INDEX app_users_created_at ON app_users (created_at);

CREATE TABLE app_events (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  user_id bigint NOT NULL REFERENCES app_users (id),
  kind text NOT NULL,
  created_at timestamptz NOT NULL,
  payload jsonb NOT NULL
);
INSERT INTO app_events (user_id, kind, created_at, payload)
SELECT 1 + (g::bigint * 7919) % :users,
       (ARRAY['view', 'click', 'signup', 'purchase', 'error'])[1 + g % 5],
       timestamptz '2025-06-01 00:00:00+00' + g * interval '2 seconds',
       jsonb_build_object('session', md5(g::text),
                          'ok', g % 11 <> 0,
                          'amount', (g % 10000) / 100.0,
                          'items', jsonb_build_array(left(md5((g * 7)::text), 16), g % 97))
FROM generate_series(1, :events) AS g;
CREATE INDEX app_events_user_created ON app_events (user_id, created_at);
CREATE INDEX app_events_kind ON app_events (kind);
CREATE INDEX app_events_payload ON app_events USING gin (payload jsonb_path_ops);

CREATE TABLE app_docs (
  id integer PRIMARY KEY,
  title text NOT NULL,
  body text NOT NULL
);
-- 1 KB bodies of hex: about as compressible as real text (2x), unlike pgbench's blank filler (36x).
INSERT INTO app_docs (id, title, body)
SELECT g, 'Document ' || g,
       (SELECT string_agg(md5(g || '-' || i), '') FROM generate_series(1, 32) AS i)
FROM generate_series(1, :docs) AS g;
CREATE INDEX app_docs_title ON app_docs (title);

CREATE VIEW app_event_kinds AS
SELECT kind, count(*) AS events FROM app_events GROUP BY kind;

VACUUM ANALYZE app_users, app_events, app_docs;
