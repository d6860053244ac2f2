-- Rollback of 005_create_invoices.sql (kept separately, as the guide says)
BEGIN;
DROP TABLE IF EXISTS invoice_lines;
DROP TABLE IF EXISTS invoices;
DELETE FROM schema_migrations WHERE version = '005_create_invoices';
COMMIT;
