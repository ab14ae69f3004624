-- Access control: requests refused for want of a permission (a refused update never enters the
-- deal's Temporal history, so the refusal is kept here), and a read-only role for auditors.
CREATE TABLE access_refusals (
    id          bigserial PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    actor       text        NOT NULL,
    role        text,
    action      text        NOT NULL,
    target      text,
    reason      text        NOT NULL
);
CREATE INDEX access_refusals_at ON access_refusals (at);

-- Auditors log in as a role that is a member of dealflow_auditor: it may read every table and
-- write none. Creating a role needs CREATEROLE; where the migrating user lacks it, this is
-- skipped with a notice and the DBA runs these statements.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'dealflow_auditor') THEN
        CREATE ROLE dealflow_auditor NOLOGIN;
    END IF;
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO dealflow_auditor', current_database());
    GRANT USAGE ON SCHEMA public TO dealflow_auditor;
    GRANT SELECT ON ALL TABLES IN SCHEMA public TO dealflow_auditor;
    ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO dealflow_auditor;
EXCEPTION WHEN insufficient_privilege THEN
    RAISE NOTICE 'dealflow_auditor not created: % (ask the DBA to run migration 0008 role statements)', SQLERRM;
END
$$;
