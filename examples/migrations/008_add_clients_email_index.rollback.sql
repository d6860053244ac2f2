-- Rollback of 008_add_clients_email_index.sql (kept separately, as the guide says).
-- DROP INDEX CONCURRENTLY cannot run inside a transaction block: no BEGIN/COMMIT here either.
DROP INDEX CONCURRENTLY IF EXISTS idx_clients_contact_email;
DELETE FROM schema_migrations WHERE version = '008_add_clients_email_index';
