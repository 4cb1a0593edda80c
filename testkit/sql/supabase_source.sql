-- supaneon-testkit: a Supabase-shaped source database.
--
-- WHAT IT IMITATES
--   A hosted Supabase project's `postgres` database (PG 15 and 17 images): the bootstrap superuser
--   `supabase_admin` owns the platform; the customer logs in as `postgres`, which is NOT a superuser
--   (CREATEDB CREATEROLE REPLICATION BYPASSRLS, member of pg_read_all_data and the API roles) and owns
--   the application in `public`. The platform schemas (auth, storage, realtime, ...) are owned by
--   their service roles, as in supabase/postgres init scripts. It is our own SQL, written from the
--   facts in shared/reference/supabase-notes.md §1, not a copy of Supabase's migrations.
--
-- WHY THE ODD OBJECTS ARE HERE (each one breaks a naive pg_dump | pg_restore into Neon)
--   * roles anon / authenticated / service_role: RLS policies name them (`TO authenticated`), and
--     --no-owner --no-acl does not remove policy roles -> "role ... does not exist".
--   * schema `extensions` with uuid-ossp, pgcrypto, pg_trgm: customer defaults and indexes point into
--     it (extensions.uuid_generate_v4(), extensions.gin_trgm_ops).
--   * auth.users + auth.uid()/role()/jwt()/email(): customer FKs, defaults and policies depend on them;
--     auth.users.confirmed_at and auth.identities.email are generated columns (COPY must skip them).
--   * the ledgers auth.schema_migrations, storage.migrations, supabase_functions.migrations,
--     realtime.schema_migrations, supabase_migrations.schema_migrations: platform bookkeeping whose
--     data must not be restored over a target's own (the CLI excludes their data).
--   * storage.objects with a generated path_tokens and a policy using storage.foldername(name).
--   * realtime.messages partitioned by range (2 daily partitions), realtime.subscription with a
--     generated `regrole` column (COPY recomputes it -> fails where the role is missing).
--   * vault.secrets, cron.job, net.*, graphql, pgbouncer.get_auth(): plain stand-ins for
--     Supabase-only extensions and their config tables (the real extensions are not on Neon).
--   * publications supabase_realtime (FOR TABLE public.todos) and
--     supabase_realtime_messages_publication (FOR TABLE realtime.messages).
--   * event triggers pgrst_ddl_watch / pgrst_drop_watch with their functions in `extensions`:
--     a non-superuser restore gets "permission denied to create event trigger".
--
-- THE APPLICATION (public, owned by postgres; app_private)
--   enum, identity and serial sequences, FKs to auth.users, defaults auth.uid() and
--   extensions.uuid_generate_v4(), a generated column, a range-partitioned table, a view, a
--   materialized view, a trigger + trigger function (and one on auth.users creating profiles),
--   jsonb, text[], numeric, double precision, real, timestamptz, date, interval, bytea, boolean,
--   NULLs, a trigram index, RLS with policies TO authenticated / anon / service_role.
--   About 8,000 rows, all deterministic (generate_series + md5, never random() or now()).
--
-- HOW TO LOAD
--   As the bootstrap superuser `supabase_admin` with psql and the variable postgres_password:
--     psql -v ON_ERROR_STOP=1 -v postgres_password=... -d <db> -f supabase_source.sql
--   Cluster::load_supabase_fixture does exactly that. Roles are created idempotently, so the
--   fixture can be loaded into two databases of one cluster; everything else is per database.

\set ON_ERROR_STOP 1
SET client_min_messages = warning;

-------------------------------------------------------------------------------------------------
-- Roles (cluster-wide, hence idempotent)
-------------------------------------------------------------------------------------------------
DO $roles$
DECLARE
  spec record;
BEGIN
  FOR spec IN
    SELECT * FROM (VALUES
      ('postgres',                'LOGIN NOSUPERUSER CREATEDB CREATEROLE REPLICATION BYPASSRLS'),
      ('anon',                    'NOLOGIN NOINHERIT'),
      ('authenticated',           'NOLOGIN NOINHERIT'),
      ('service_role',            'NOLOGIN NOINHERIT BYPASSRLS'),
      ('authenticator',           'LOGIN NOINHERIT'),
      ('supabase_auth_admin',     'LOGIN NOINHERIT CREATEROLE'),
      ('supabase_storage_admin',  'LOGIN NOINHERIT CREATEROLE'),
      ('supabase_realtime_admin', 'NOLOGIN NOINHERIT'),
      ('supabase_functions_admin','LOGIN NOINHERIT CREATEROLE'),
      ('dashboard_user',          'NOLOGIN CREATEDB CREATEROLE REPLICATION'),
      ('pgbouncer',               'LOGIN')
    ) AS r(name, attributes)
  LOOP
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = spec.name) THEN
      EXECUTE format('CREATE ROLE %I %s', spec.name, spec.attributes);
    END IF;
  END LOOP;
END
$roles$;

ALTER ROLE postgres WITH LOGIN NOSUPERUSER CREATEDB CREATEROLE REPLICATION BYPASSRLS
  PASSWORD :'postgres_password';
ALTER ROLE anon SET statement_timeout = '3s';
ALTER ROLE authenticated SET statement_timeout = '8s';
ALTER ROLE authenticator SET statement_timeout = '8s';
GRANT anon, authenticated, service_role TO authenticator;
GRANT anon, authenticated, service_role TO postgres;
GRANT pg_read_all_data TO postgres;

-- The customer owns the database (and so `public`, owned by pg_database_owner on PG 15+).
ALTER DATABASE :"DBNAME" OWNER TO postgres;

-------------------------------------------------------------------------------------------------
-- Platform schemas
-------------------------------------------------------------------------------------------------
CREATE SCHEMA extensions AUTHORIZATION postgres;
CREATE SCHEMA auth AUTHORIZATION supabase_admin;
CREATE SCHEMA storage AUTHORIZATION supabase_admin;
CREATE SCHEMA realtime AUTHORIZATION supabase_admin;
CREATE SCHEMA supabase_functions AUTHORIZATION supabase_admin;
CREATE SCHEMA supabase_migrations AUTHORIZATION postgres;
CREATE SCHEMA graphql AUTHORIZATION supabase_admin;
CREATE SCHEMA graphql_public AUTHORIZATION supabase_admin;
CREATE SCHEMA vault AUTHORIZATION supabase_admin;
CREATE SCHEMA net AUTHORIZATION supabase_admin;
CREATE SCHEMA cron AUTHORIZATION supabase_admin;
CREATE SCHEMA pgbouncer AUTHORIZATION pgbouncer;

GRANT USAGE ON SCHEMA extensions, auth, storage, realtime, graphql_public
  TO postgres, anon, authenticated, service_role, supabase_storage_admin, supabase_realtime_admin;
GRANT USAGE ON SCHEMA public TO anon, authenticated, service_role;
GRANT ALL ON SCHEMA auth TO supabase_auth_admin;
GRANT ALL ON SCHEMA storage TO supabase_storage_admin;
GRANT ALL ON SCHEMA realtime TO supabase_realtime_admin;
GRANT ALL ON SCHEMA supabase_functions TO supabase_functions_admin;

CREATE EXTENSION IF NOT EXISTS "uuid-ossp" WITH SCHEMA extensions;
CREATE EXTENSION IF NOT EXISTS pgcrypto WITH SCHEMA extensions;
CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA extensions;

-------------------------------------------------------------------------------------------------
-- auth (GoTrue), owned by supabase_auth_admin
-------------------------------------------------------------------------------------------------
SET ROLE supabase_auth_admin;

CREATE TABLE auth.users (
  instance_id uuid,
  id uuid PRIMARY KEY,
  aud varchar(255),
  role varchar(255),
  email varchar(255),
  encrypted_password varchar(255),
  email_confirmed_at timestamptz,
  phone text UNIQUE DEFAULT NULL,
  phone_confirmed_at timestamptz,
  confirmed_at timestamptz GENERATED ALWAYS AS (LEAST(email_confirmed_at, phone_confirmed_at)) STORED,
  raw_app_meta_data jsonb,
  raw_user_meta_data jsonb,
  is_super_admin boolean,
  is_anonymous boolean NOT NULL DEFAULT false,
  created_at timestamptz,
  updated_at timestamptz
);
CREATE INDEX users_email_idx ON auth.users (email);

CREATE TABLE auth.identities (
  provider_id text NOT NULL,
  user_id uuid NOT NULL REFERENCES auth.users (id) ON DELETE CASCADE,
  identity_data jsonb NOT NULL,
  provider text NOT NULL,
  last_sign_in_at timestamptz,
  created_at timestamptz,
  updated_at timestamptz,
  email text GENERATED ALWAYS AS (lower(identity_data ->> 'email')) STORED,
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  UNIQUE (provider_id, provider)
);

CREATE TABLE auth.schema_migrations (version varchar(255) PRIMARY KEY);

-- Supabase reads the JWT claims PostgREST puts into settings; both the old per-claim settings and
-- the newer request.jwt.claims JSON are honoured.
CREATE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql STABLE AS $$
  SELECT coalesce(
    nullif(current_setting('request.jwt.claim.sub', true), ''),
    (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')
  )::uuid
$$;
CREATE FUNCTION auth.role() RETURNS text LANGUAGE sql STABLE AS $$
  SELECT coalesce(
    nullif(current_setting('request.jwt.claim.role', true), ''),
    (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'role')
  )::text
$$;
CREATE FUNCTION auth.email() RETURNS text LANGUAGE sql STABLE AS $$
  SELECT coalesce(
    nullif(current_setting('request.jwt.claim.email', true), ''),
    (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'email')
  )::text
$$;
CREATE FUNCTION auth.jwt() RETURNS jsonb LANGUAGE sql STABLE AS $$
  SELECT coalesce(
    nullif(current_setting('request.jwt.claim', true), ''),
    nullif(current_setting('request.jwt.claims', true), '')
  )::jsonb
$$;

RESET ROLE;
GRANT SELECT, REFERENCES ON auth.users TO postgres, dashboard_user;
GRANT SELECT ON auth.identities TO postgres, dashboard_user;

-------------------------------------------------------------------------------------------------
-- storage, owned by supabase_storage_admin
-------------------------------------------------------------------------------------------------
SET ROLE supabase_storage_admin;

CREATE TABLE storage.buckets (
  id text PRIMARY KEY,
  name text NOT NULL UNIQUE,
  owner uuid,
  public boolean DEFAULT false,
  file_size_limit bigint,
  allowed_mime_types text[],
  created_at timestamptz DEFAULT now(),
  updated_at timestamptz DEFAULT now()
);

CREATE TABLE storage.objects (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  bucket_id text REFERENCES storage.buckets (id),
  name text,
  owner uuid,
  created_at timestamptz DEFAULT now(),
  updated_at timestamptz DEFAULT now(),
  last_accessed_at timestamptz DEFAULT now(),
  metadata jsonb,
  path_tokens text[] GENERATED ALWAYS AS (string_to_array(name, '/')) STORED,
  version text
);
CREATE UNIQUE INDEX bucketid_objname ON storage.objects (bucket_id, name);

CREATE TABLE storage.migrations (
  id integer PRIMARY KEY,
  name varchar(100) UNIQUE NOT NULL,
  hash varchar(40) NOT NULL,
  executed_at timestamp DEFAULT current_timestamp
);

CREATE FUNCTION storage.foldername(name text) RETURNS text[] LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
  _parts text[];
BEGIN
  SELECT string_to_array(name, '/') INTO _parts;
  RETURN _parts[1:array_length(_parts, 1) - 1];
END
$$;
CREATE FUNCTION storage.filename(name text) RETURNS text LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
  _parts text[];
BEGIN
  SELECT string_to_array(name, '/') INTO _parts;
  RETURN _parts[array_length(_parts, 1)];
END
$$;
CREATE FUNCTION storage.extension(name text) RETURNS text LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
  _filename text;
BEGIN
  SELECT storage.filename(name) INTO _filename;
  RETURN reverse(split_part(reverse(_filename), '.', 1));
END
$$;

ALTER TABLE storage.objects ENABLE ROW LEVEL SECURITY;
CREATE POLICY "Users read their own folder" ON storage.objects
  FOR SELECT TO authenticated
  USING (bucket_id = 'avatars' AND (storage.foldername(name))[1] = auth.uid()::text);
CREATE POLICY "Users upload into their own folder" ON storage.objects
  FOR INSERT TO authenticated
  WITH CHECK (bucket_id = 'avatars' AND (storage.foldername(name))[1] = auth.uid()::text);
CREATE POLICY "Anyone reads public buckets" ON storage.objects
  FOR SELECT TO anon
  USING (bucket_id = 'public-assets');

RESET ROLE;
GRANT ALL ON storage.objects, storage.buckets TO anon, authenticated, service_role;
GRANT SELECT ON storage.objects, storage.buckets TO postgres;

-------------------------------------------------------------------------------------------------
-- realtime
-------------------------------------------------------------------------------------------------
CREATE TABLE realtime.schema_migrations (
  version bigint PRIMARY KEY,
  inserted_at timestamp(0)
);

CREATE FUNCTION realtime.to_regrole(role_name text) RETURNS regrole LANGUAGE sql IMMUTABLE
  AS $$ SELECT role_name::regrole $$;

-- The generated regrole column is recomputed by COPY on restore: it fails where the role is absent.
CREATE TABLE realtime.subscription (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  subscription_id uuid NOT NULL,
  entity regclass NOT NULL,
  claims jsonb NOT NULL,
  claims_role regrole GENERATED ALWAYS AS (realtime.to_regrole(claims ->> 'role')) STORED,
  created_at timestamp NOT NULL DEFAULT timezone('utc', now())
);

SET ROLE supabase_realtime_admin;
CREATE TABLE realtime.messages (
  topic text NOT NULL,
  extension text NOT NULL,
  payload jsonb,
  event text,
  private boolean DEFAULT false,
  updated_at timestamp NOT NULL DEFAULT now(),
  inserted_at timestamp NOT NULL DEFAULT now(),
  id uuid NOT NULL DEFAULT gen_random_uuid(),
  PRIMARY KEY (id, inserted_at)
) PARTITION BY RANGE (inserted_at);
CREATE TABLE realtime.messages_2026_01_01 PARTITION OF realtime.messages
  FOR VALUES FROM ('2026-01-01') TO ('2026-01-02');
CREATE TABLE realtime.messages_2026_01_02 PARTITION OF realtime.messages
  FOR VALUES FROM ('2026-01-02') TO ('2026-01-03');
ALTER TABLE realtime.messages ENABLE ROW LEVEL SECURITY;
CREATE POLICY "authenticated receive broadcasts" ON realtime.messages
  FOR SELECT TO authenticated USING (extension = 'broadcast');
RESET ROLE;

-------------------------------------------------------------------------------------------------
-- Database webhooks, CLI migrations, GraphQL, Vault, pg_net, pg_cron, PgBouncer
-------------------------------------------------------------------------------------------------
SET ROLE supabase_functions_admin;
CREATE TABLE supabase_functions.migrations (
  version text PRIMARY KEY,
  inserted_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE supabase_functions.hooks (
  id bigserial PRIMARY KEY,
  hook_table_id integer NOT NULL,
  hook_name text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  request_id bigint
);
-- Stand-in for the webhook trigger function (the real one calls pg_net).
CREATE FUNCTION supabase_functions.http_request() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RETURN NEW;
END
$$;
RESET ROLE;

CREATE TABLE supabase_migrations.schema_migrations (
  version text PRIMARY KEY,
  statements text[],
  name text
);
ALTER TABLE supabase_migrations.schema_migrations OWNER TO postgres;

-- pg_graphql internals and its public wrapper (the extension itself is Supabase-only here).
CREATE TABLE graphql._type (id serial PRIMARY KEY, name text NOT NULL);
CREATE FUNCTION graphql_public.graphql(
  "operationName" text DEFAULT NULL, query text DEFAULT NULL,
  variables jsonb DEFAULT NULL, extensions jsonb DEFAULT NULL
) RETURNS jsonb LANGUAGE sql AS $$ SELECT '{"errors":[{"message":"pg_graphql is not installed"}]}'::jsonb $$;

-- supabase_vault's config table, as a plain table.
CREATE TABLE vault.secrets (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  name text UNIQUE,
  description text NOT NULL DEFAULT '',
  secret text NOT NULL,
  key_id uuid,
  nonce bytea,
  created_at timestamptz NOT NULL DEFAULT current_timestamp,
  updated_at timestamptz NOT NULL DEFAULT current_timestamp
);

-- pg_net's queue and responses.
CREATE TABLE net.http_request_queue (
  id bigserial,
  method text NOT NULL,
  url text NOT NULL,
  headers jsonb NOT NULL,
  body bytea,
  timeout_milliseconds integer NOT NULL
);
CREATE UNLOGGED TABLE net._http_response (
  id bigint,
  status_code integer,
  content_type text,
  headers jsonb,
  content text,
  timed_out boolean,
  error_msg text,
  created timestamptz NOT NULL DEFAULT now()
);
CREATE FUNCTION net.http_get(url text, params jsonb DEFAULT '{}', headers jsonb DEFAULT '{}',
  timeout_milliseconds integer DEFAULT 5000) RETURNS bigint LANGUAGE sql AS $$
  INSERT INTO net.http_request_queue (method, url, headers, timeout_milliseconds)
  VALUES ('GET', url, headers, timeout_milliseconds) RETURNING id
$$;

-- pg_cron's config table with its row-level policy.
CREATE TABLE cron.job (
  jobid bigserial PRIMARY KEY,
  schedule text NOT NULL,
  command text NOT NULL,
  nodename text NOT NULL DEFAULT 'localhost',
  nodeport integer NOT NULL DEFAULT 5432,
  database text NOT NULL DEFAULT current_database(),
  username text NOT NULL DEFAULT current_user,
  active boolean NOT NULL DEFAULT true,
  jobname text
);
ALTER TABLE cron.job ENABLE ROW LEVEL SECURITY;
CREATE POLICY cron_job_policy ON cron.job USING (username = current_user);

-- PgBouncer's auth_query function.
CREATE FUNCTION pgbouncer.get_auth(p_usename text)
  RETURNS TABLE (username text, password text)
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = '' AS $$
BEGIN
  RETURN QUERY
  SELECT usename::text, passwd::text FROM pg_catalog.pg_shadow WHERE usename = p_usename;
END
$$;
REVOKE ALL ON FUNCTION pgbouncer.get_auth(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pgbouncer.get_auth(text) TO pgbouncer;

-------------------------------------------------------------------------------------------------
-- The customer's application, created by the customer (postgres)
-------------------------------------------------------------------------------------------------
SET ROLE postgres;

CREATE TYPE public.task_status AS ENUM ('todo', 'doing', 'done');

CREATE TABLE public.profiles (
  id uuid PRIMARY KEY REFERENCES auth.users (id) ON DELETE CASCADE,
  username text UNIQUE,
  full_name text,
  avatar_url text,
  website text,
  updated_at timestamptz
);

CREATE TABLE public.todos (
  id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
  user_id uuid NOT NULL DEFAULT auth.uid() REFERENCES auth.users (id) ON DELETE CASCADE,
  task text NOT NULL CHECK (char_length(task) > 3),
  status public.task_status NOT NULL DEFAULT 'todo',
  is_complete boolean NOT NULL DEFAULT false,
  priority smallint,
  due_date date,
  tags text[],
  metadata jsonb,
  inserted_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX todos_user_id_idx ON public.todos (user_id);

CREATE TABLE public.orders (
  id uuid PRIMARY KEY DEFAULT extensions.uuid_generate_v4(),
  order_no bigserial UNIQUE,
  user_id uuid REFERENCES auth.users (id),
  amount numeric(12, 2) NOT NULL,
  quantity integer NOT NULL,
  subtotal numeric GENERATED ALWAYS AS (amount * quantity) STORED,
  tax_rate double precision,
  discount real,
  placed_at timestamptz NOT NULL,
  ship_date date,
  processing_time interval,
  receipt bytea,
  paid boolean,
  note text
);

CREATE TABLE public.messages (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  sender uuid NOT NULL DEFAULT auth.uid() REFERENCES auth.users (id),
  body text NOT NULL,
  is_public boolean NOT NULL DEFAULT false,
  sent_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX messages_body_trgm_idx ON public.messages USING gin (body extensions.gin_trgm_ops);

CREATE TABLE public.events (
  id bigint GENERATED BY DEFAULT AS IDENTITY,
  occurred_at timestamptz NOT NULL,
  kind text NOT NULL,
  payload jsonb,
  PRIMARY KEY (id, occurred_at)
) PARTITION BY RANGE (occurred_at);
CREATE TABLE public.events_2025 PARTITION OF public.events
  FOR VALUES FROM ('2025-01-01 00:00:00+00') TO ('2026-01-01 00:00:00+00');
CREATE TABLE public.events_2026 PARTITION OF public.events
  FOR VALUES FROM ('2026-01-01 00:00:00+00') TO ('2027-01-01 00:00:00+00');

CREATE TABLE public.audit_log (
  id bigserial PRIMARY KEY,
  table_name text NOT NULL,
  operation text NOT NULL,
  row_id bigint,
  changed_at timestamptz NOT NULL
);

-- Audit trail; records the row's own timestamp so the data stays deterministic.
CREATE FUNCTION public.log_todo_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    INSERT INTO public.audit_log (table_name, operation, row_id, changed_at)
    VALUES (TG_TABLE_NAME, TG_OP, OLD.id, OLD.inserted_at);
    RETURN OLD;
  END IF;
  INSERT INTO public.audit_log (table_name, operation, row_id, changed_at)
  VALUES (TG_TABLE_NAME, TG_OP, NEW.id, NEW.inserted_at);
  RETURN NEW;
END
$$;
CREATE TRIGGER todos_audit AFTER INSERT OR UPDATE OR DELETE ON public.todos
  FOR EACH ROW EXECUTE FUNCTION public.log_todo_change();

-- Supabase's quick-start: a profile row for every new auth user.
CREATE FUNCTION public.handle_new_user() RETURNS trigger
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = '' AS $$
BEGIN
  INSERT INTO public.profiles (id, username, full_name, avatar_url, updated_at)
  VALUES (NEW.id, NEW.raw_user_meta_data ->> 'user_name', NEW.raw_user_meta_data ->> 'full_name',
          NEW.raw_user_meta_data ->> 'avatar_url', NEW.created_at);
  RETURN NEW;
END
$$;

CREATE VIEW public.open_todos WITH (security_invoker = true) AS
  SELECT t.id, t.user_id, p.username, t.task, t.status, t.due_date
  FROM public.todos t JOIN public.profiles p ON p.id = t.user_id
  WHERE NOT t.is_complete;

CREATE SCHEMA app_private AUTHORIZATION postgres;
CREATE TABLE app_private.admins (
  user_id uuid PRIMARY KEY REFERENCES auth.users (id),
  granted_at timestamptz NOT NULL
);
CREATE FUNCTION app_private.is_admin(uid uuid) RETURNS boolean
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = '' AS $$
  SELECT EXISTS (SELECT 1 FROM app_private.admins a WHERE a.user_id = uid)
$$;
GRANT USAGE ON SCHEMA app_private TO authenticated, service_role;

-- Row level security: the real guard, since the API roles get ALL on public tables.
ALTER TABLE public.profiles ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.todos ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.orders ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.messages ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.events ENABLE ROW LEVEL SECURITY;

CREATE POLICY "Public profiles are viewable by everyone" ON public.profiles
  FOR SELECT TO anon, authenticated USING (true);
CREATE POLICY "Users can update own profile" ON public.profiles
  FOR UPDATE TO authenticated USING (auth.uid() = id) WITH CHECK (auth.uid() = id);
CREATE POLICY "Individuals can view their own todos" ON public.todos
  FOR SELECT TO authenticated USING (auth.uid() = user_id);
CREATE POLICY "Individuals can create todos" ON public.todos
  FOR INSERT TO authenticated WITH CHECK (auth.uid() = user_id);
CREATE POLICY "Individuals can update their own todos" ON public.todos
  FOR UPDATE TO authenticated USING (auth.uid() = user_id);
CREATE POLICY "Individuals can delete their own todos" ON public.todos
  FOR DELETE TO authenticated USING (auth.uid() = user_id);
CREATE POLICY "Admins see every todo" ON public.todos
  FOR SELECT TO authenticated USING (app_private.is_admin(auth.uid()));
CREATE POLICY "Owners read their orders" ON public.orders
  FOR SELECT TO authenticated USING (user_id = auth.uid());
CREATE POLICY "Service role manages orders" ON public.orders
  FOR ALL TO service_role USING (true) WITH CHECK (true);
CREATE POLICY "Anyone reads public messages" ON public.messages
  FOR SELECT TO anon USING (is_public);
CREATE POLICY "Members read and write messages" ON public.messages
  FOR ALL TO authenticated USING (sender = auth.uid()) WITH CHECK (sender = auth.uid());
CREATE POLICY "Service role reads events" ON public.events
  FOR SELECT TO service_role USING (true);

GRANT ALL ON ALL TABLES IN SCHEMA public TO anon, authenticated, service_role;
GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO anon, authenticated, service_role;
GRANT ALL ON ALL FUNCTIONS IN SCHEMA public TO anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON TABLES TO anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON SEQUENCES TO anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON FUNCTIONS TO anon, authenticated, service_role;

RESET ROLE;

-- Only the table owner (supabase_auth_admin) or a superuser may add a trigger on auth.users.
CREATE TRIGGER on_auth_user_created AFTER INSERT ON auth.users
  FOR EACH ROW EXECUTE FUNCTION public.handle_new_user();

-------------------------------------------------------------------------------------------------
-- Data (deterministic: every value derives from the generate_series index)
-------------------------------------------------------------------------------------------------
INSERT INTO auth.users (instance_id, id, aud, role, email, encrypted_password, email_confirmed_at,
                        phone, phone_confirmed_at, raw_app_meta_data, raw_user_meta_data,
                        is_super_admin, is_anonymous, created_at, updated_at)
SELECT '00000000-0000-0000-0000-000000000000',
       md5('user-' || i)::uuid,
       'authenticated', 'authenticated',
       'user' || i || '@example.com',
       '$2a$10$' || md5('password-' || i),
       CASE WHEN i % 10 = 0 THEN NULL ELSE timestamptz '2025-01-01 00:00:00+00' + i * interval '1 hour' END,
       CASE WHEN i % 4 = 0 THEN '+1555' || lpad(i::text, 7, '0') END,
       CASE WHEN i % 8 = 0 THEN timestamptz '2025-01-01 00:00:00+00' + i * interval '30 minutes' END,
       jsonb_build_object('provider', 'email', 'providers', jsonb_build_array('email')),
       jsonb_build_object('user_name', 'user_' || i, 'full_name', 'User Number ' || i,
                          'avatar_url', CASE WHEN i % 3 = 0 THEN 'avatars/' || i || '.png' END),
       false,
       i % 50 = 0,
       timestamptz '2025-01-01 00:00:00+00' + i * interval '1 hour',
       timestamptz '2025-01-02 00:00:00+00' + i * interval '1 hour'
FROM generate_series(1, 200) AS i;

INSERT INTO auth.identities (provider_id, user_id, identity_data, provider, last_sign_in_at,
                             created_at, updated_at, id)
SELECT md5('user-' || i)::uuid::text, md5('user-' || i)::uuid,
       jsonb_build_object('sub', md5('user-' || i)::uuid::text, 'email', 'User' || i || '@Example.com'),
       'email',
       timestamptz '2025-03-01 00:00:00+00' + i * interval '2 hours',
       timestamptz '2025-01-01 00:00:00+00' + i * interval '1 hour',
       timestamptz '2025-01-01 00:00:00+00' + i * interval '1 hour',
       md5('identity-' || i)::uuid
FROM generate_series(1, 200) AS i;

INSERT INTO auth.schema_migrations (version)
SELECT to_char(date '2021-01-01' + i * 11, 'YYYYMMDD') || '000000'
FROM generate_series(1, 60) AS i;

INSERT INTO storage.buckets (id, name, owner, public, file_size_limit, allowed_mime_types, created_at, updated_at)
VALUES ('avatars', 'avatars', NULL, false, 1048576, ARRAY['image/png', 'image/jpeg'],
        '2025-01-01 00:00:00+00', '2025-01-01 00:00:00+00'),
       ('public-assets', 'public-assets', NULL, true, NULL, NULL,
        '2025-01-01 00:00:00+00', '2025-01-01 00:00:00+00');

INSERT INTO storage.objects (id, bucket_id, name, owner, created_at, updated_at, last_accessed_at, metadata, version)
SELECT md5('object-' || i)::uuid,
       CASE WHEN i % 3 = 0 THEN 'public-assets' ELSE 'avatars' END,
       md5('user-' || (i % 200 + 1))::uuid::text || '/folder' || (i % 4) || '/file' || i || '.png',
       md5('user-' || (i % 200 + 1))::uuid,
       timestamptz '2025-02-01 00:00:00+00' + i * interval '5 minutes',
       timestamptz '2025-02-01 00:00:00+00' + i * interval '5 minutes',
       timestamptz '2025-02-01 00:00:00+00' + i * interval '7 minutes',
       jsonb_build_object('size', i * 1024, 'mimetype', 'image/png', 'eTag', md5('etag-' || i)),
       md5('version-' || i)
FROM generate_series(1, 300) AS i;

INSERT INTO storage.migrations (id, name, hash, executed_at)
SELECT i, 'migration-' || lpad(i::text, 4, '0'), substr(md5('storage-migration-' || i), 1, 40),
       timestamp '2024-01-01 00:00:00' + i * interval '1 day'
FROM generate_series(0, 40) AS i;

INSERT INTO realtime.schema_migrations (version, inserted_at)
SELECT 20210000000000 + i * 1000000, timestamp '2024-01-01 00:00:00' + i * interval '1 day'
FROM generate_series(1, 30) AS i;

INSERT INTO realtime.messages (topic, extension, payload, event, private, updated_at, inserted_at, id)
SELECT 'room:' || (i % 5),
       CASE WHEN i % 2 = 0 THEN 'broadcast' ELSE 'presence' END,
       jsonb_build_object('n', i, 'text', 'hello ' || i),
       'message', i % 4 = 0,
       timestamp '2026-01-01 00:00:00' + i * interval '17 minutes',
       timestamp '2026-01-01 00:00:00' + i * interval '17 minutes',
       md5('realtime-message-' || i)::uuid
FROM generate_series(1, 160) AS i;  -- 160 * 17 min spans both daily partitions

INSERT INTO realtime.subscription (subscription_id, entity, claims, created_at)
SELECT md5('subscription-' || i)::uuid, 'public.todos'::regclass,
       jsonb_build_object('role', CASE WHEN i % 2 = 0 THEN 'authenticated' ELSE 'anon' END,
                          'sub', md5('user-' || i)::uuid),
       timestamp '2026-01-01 00:00:00' + i * interval '1 minute'
FROM generate_series(1, 4) AS i;

INSERT INTO supabase_functions.migrations (version, inserted_at)
VALUES ('initial', '2024-01-01 00:00:00+00'), ('20210809183423_update_grants', '2024-01-02 00:00:00+00');
INSERT INTO supabase_functions.hooks (hook_table_id, hook_name, created_at, request_id)
SELECT 16384 + i, 'todo_webhook', timestamptz '2025-05-01 00:00:00+00' + i * interval '1 minute', i
FROM generate_series(1, 20) AS i;

INSERT INTO supabase_migrations.schema_migrations (version, statements, name)
SELECT to_char(date '2025-01-01' + i * 7, 'YYYYMMDD') || '120000',
       ARRAY['create table if not exists public.t' || i || ' (id int)'],
       'migration_' || i
FROM generate_series(1, 12) AS i;

INSERT INTO graphql._type (name) VALUES ('Query'), ('Mutation');
INSERT INTO vault.secrets (id, name, description, secret, key_id, nonce, created_at, updated_at)
VALUES (md5('vault-1')::uuid, 'stripe_key', 'payment provider', 'not-a-real-secret',
        md5('vault-key')::uuid, decode(md5('nonce'), 'hex'), '2025-01-01 00:00:00+00', '2025-01-01 00:00:00+00');
INSERT INTO net.http_request_queue (method, url, headers, body, timeout_milliseconds)
VALUES ('POST', 'https://example.invalid/hook', '{"content-type":"application/json"}', NULL, 5000);
INSERT INTO cron.job (schedule, command, database, username, jobname)
VALUES ('0 3 * * *', 'REFRESH MATERIALIZED VIEW public.todo_stats', 'postgres', 'postgres', 'nightly-stats');

SET ROLE postgres;

INSERT INTO public.todos (user_id, task, status, is_complete, priority, due_date, tags, metadata, inserted_at)
SELECT md5('user-' || (i % 200 + 1))::uuid,
       'Task number ' || i,
       (ARRAY['todo', 'doing', 'done']::public.task_status[])[i % 3 + 1],
       i % 3 = 2,
       CASE WHEN i % 9 = 0 THEN NULL ELSE (i % 5)::smallint END,
       CASE WHEN i % 6 = 0 THEN NULL ELSE date '2025-06-01' + (i % 120) END,
       CASE WHEN i % 11 = 0 THEN NULL ELSE ARRAY['tag' || (i % 5), 'p' || (i % 3)] END,
       CASE WHEN i % 13 = 0 THEN NULL
            ELSE jsonb_build_object('estimate_h', i % 8, 'labels', jsonb_build_array('a' || (i % 4))) END,
       timestamptz '2025-03-01 00:00:00+00' + i * interval '37 minutes'
FROM generate_series(1, 2000) AS i;

INSERT INTO public.orders (id, user_id, amount, quantity, tax_rate, discount, placed_at, ship_date,
                           processing_time, receipt, paid, note)
SELECT md5('order-' || i)::uuid,
       CASE WHEN i % 17 = 0 THEN NULL ELSE md5('user-' || (i % 200 + 1))::uuid END,
       round((i * 3.17)::numeric % 1000, 2) + 0.99,
       i % 7 + 1,
       (i % 25) / 100.0::double precision,
       CASE WHEN i % 5 = 0 THEN NULL ELSE ((i % 30) / 3.0)::real END,
       timestamptz '2025-04-01 00:00:00+00' + i * interval '53 minutes',
       CASE WHEN i % 4 = 0 THEN NULL ELSE date '2025-04-03' + (i / 20) END,
       make_interval(hours => i % 48, mins => i % 60),
       CASE WHEN i % 10 = 0 THEN NULL ELSE decode(md5('receipt-' || i), 'hex') END,
       CASE WHEN i % 9 = 0 THEN NULL ELSE i % 2 = 0 END,
       CASE WHEN i % 3 = 0 THEN 'note for order ' || i || E' with \'quotes\' and tabs\t' END
FROM generate_series(1, 1000) AS i;

INSERT INTO public.messages (sender, body, is_public, sent_at)
SELECT md5('user-' || (i % 200 + 1))::uuid,
       'message ' || i || ' about ' || (ARRAY['postgres', 'neon', 'supabase', 'backups'])[i % 4 + 1],
       i % 4 = 0,
       timestamptz '2025-05-01 00:00:00+00' + i * interval '11 minutes'
FROM generate_series(1, 500) AS i;

INSERT INTO public.events (occurred_at, kind, payload)
SELECT timestamptz '2025-10-01 00:00:00+00' + i * interval '3 hours',
       (ARRAY['login', 'logout', 'purchase'])[i % 3 + 1],
       CASE WHEN i % 10 = 0 THEN NULL ELSE jsonb_build_object('i', i, 'ok', i % 2 = 0) END
FROM generate_series(1, 1000) AS i;  -- from 2025-10 into 2026: both partitions

INSERT INTO app_private.admins (user_id, granted_at)
SELECT md5('user-' || i)::uuid, timestamptz '2025-01-15 00:00:00+00' + i * interval '1 day'
FROM generate_series(1, 3) AS i;

-- Some updates and deletes so the audit log sees every operation.
UPDATE public.todos SET is_complete = true, status = 'done' WHERE id % 97 = 0;
DELETE FROM public.todos WHERE id % 401 = 0;

CREATE MATERIALIZED VIEW public.todo_stats AS
  SELECT user_id, count(*) AS total, count(*) FILTER (WHERE is_complete) AS completed
  FROM public.todos GROUP BY user_id
  WITH DATA;
CREATE UNIQUE INDEX todo_stats_user_id_idx ON public.todo_stats (user_id);
GRANT SELECT ON public.todo_stats TO authenticated, service_role;

RESET ROLE;

-------------------------------------------------------------------------------------------------
-- Platform extras that break a naive restore (last, so the fixture's own DDL does not fire them)
-------------------------------------------------------------------------------------------------
CREATE PUBLICATION supabase_realtime FOR TABLE public.todos
  WITH (publish = 'insert, update, delete, truncate');
CREATE PUBLICATION supabase_realtime_messages_publication FOR TABLE realtime.messages;

-- PostgREST reloads its schema cache on DDL.
CREATE FUNCTION extensions.pgrst_ddl_watch() RETURNS event_trigger LANGUAGE plpgsql AS $$
DECLARE
  cmd record;
BEGIN
  FOR cmd IN SELECT * FROM pg_event_trigger_ddl_commands() LOOP
    IF cmd.command_tag IN ('CREATE SCHEMA', 'ALTER SCHEMA', 'CREATE TABLE', 'CREATE TABLE AS',
                           'SELECT INTO', 'ALTER TABLE', 'CREATE FOREIGN TABLE', 'ALTER FOREIGN TABLE',
                           'CREATE VIEW', 'ALTER VIEW', 'CREATE MATERIALIZED VIEW',
                           'ALTER MATERIALIZED VIEW', 'CREATE FUNCTION', 'ALTER FUNCTION',
                           'CREATE TRIGGER', 'CREATE TYPE', 'ALTER TYPE', 'CREATE RULE', 'COMMENT')
       AND cmd.schema_name IS DISTINCT FROM 'pg_temp' THEN
      NOTIFY pgrst, 'reload schema';
    END IF;
  END LOOP;
END
$$;
CREATE FUNCTION extensions.pgrst_drop_watch() RETURNS event_trigger LANGUAGE plpgsql AS $$
DECLARE
  obj record;
BEGIN
  FOR obj IN SELECT * FROM pg_event_trigger_dropped_objects() LOOP
    IF obj.object_type IN ('schema', 'table', 'foreign table', 'view', 'materialized view',
                           'function', 'trigger', 'type', 'rule')
       AND obj.is_temporary IS false THEN
      NOTIFY pgrst, 'reload schema';
    END IF;
  END LOOP;
END
$$;
CREATE EVENT TRIGGER pgrst_ddl_watch ON ddl_command_end EXECUTE FUNCTION extensions.pgrst_ddl_watch();
CREATE EVENT TRIGGER pgrst_drop_watch ON sql_drop EXECUTE FUNCTION extensions.pgrst_drop_watch();

ANALYZE;
