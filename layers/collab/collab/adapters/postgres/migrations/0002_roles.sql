-- runs as: admin (creates roles; every later migration runs as collab_migrator)
--
-- Least privilege. The functions log in as collab_runtime: DML on the app's tables and nothing
-- else (no DDL, no schema_migrations, no other database object), with timeouts so that a lock or
-- a slow plan cannot hold a Lambda past its budget (docs/deploy.md, "Time budget"). Migrations run
-- as collab_migrator, which owns the schema. Roles are cluster-wide: creating one that exists (a
-- second database of the same cluster, a concurrent run) is not an error. Their passwords are set
-- by the migrate function from their secrets (collab.adapters.postgres.migrate.set_passwords).
DO $$ BEGIN
    CREATE ROLE collab_migrator LOGIN;
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
END $$;
DO $$ BEGIN
    CREATE ROLE collab_runtime LOGIN;
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
END $$;

-- whoever runs migrations (the RDS master user) may act as the migrator
DO $$ BEGIN
    EXECUTE format('GRANT collab_migrator TO %I', current_user);
EXCEPTION WHEN duplicate_object OR invalid_grant_operation THEN NULL;
END $$;

GRANT USAGE, CREATE ON SCHEMA public TO collab_migrator;
DO $$
DECLARE r record;
BEGIN
    FOR r IN SELECT tablename FROM pg_tables WHERE schemaname = 'public' LOOP
        EXECUTE format('ALTER TABLE public.%I OWNER TO collab_migrator', r.tablename);
    END LOOP;
    FOR r IN SELECT p.oid::regprocedure AS fn FROM pg_proc p
             JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'public' LOOP
        EXECUTE format('ALTER FUNCTION %s OWNER TO collab_migrator', r.fn);
    END LOOP;
END $$;

REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO collab_runtime;
GRANT SELECT, INSERT, UPDATE, DELETE ON
    users, workspaces, workspace_members, tasks, activity, notifications TO collab_runtime;
REVOKE ALL ON schema_migrations FROM collab_runtime;
-- tables a later migration creates (as collab_migrator) are the runtime's to use, not to alter
ALTER DEFAULT PRIVILEGES FOR ROLE collab_migrator IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO collab_runtime;
ALTER DEFAULT PRIVILEGES FOR ROLE collab_migrator IN SCHEMA public
    GRANT USAGE, SELECT ON SEQUENCES TO collab_runtime;

-- A statement longer than 3 s or a lock wait over 1 s is an error, not a stuck function: a
-- WebSocket route has 10 s in all (Redis, Postgres, fan-out). A transaction left open by a
-- container that was stopped mid-way is ended after 10 s, releasing its row locks.
ALTER ROLE collab_runtime SET statement_timeout = '3s';
ALTER ROLE collab_runtime SET lock_timeout = '1s';
ALTER ROLE collab_runtime SET idle_in_transaction_session_timeout = '10s';
