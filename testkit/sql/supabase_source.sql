-- placeholder; replaced by the full fixture
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'postgres') THEN
    CREATE ROLE postgres LOGIN;
  END IF;
END $$;
ALTER ROLE postgres WITH PASSWORD :'postgres_password';
