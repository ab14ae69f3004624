-- The event log is append-only: no row is ever updated or deleted, and the table is never
-- truncated, whoever asks. The application never does; these triggers make the database refuse
-- it too. (The audit tests, which tamper with rows to show `audit verify` catching it, bypass
-- them as a superuser does, with `SET session_replication_role = replica`.)
CREATE FUNCTION deal_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the event log is append-only: % on deal_events refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER deal_events_no_update_or_delete BEFORE UPDATE OR DELETE ON deal_events
    FOR EACH ROW EXECUTE FUNCTION deal_events_append_only();

CREATE TRIGGER deal_events_no_truncate BEFORE TRUNCATE ON deal_events
    FOR EACH STATEMENT EXECUTE FUNCTION deal_events_append_only();
