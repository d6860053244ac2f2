-- Migration: 006_add_invoice_status_overdue.sql
-- Date: 2025-07-09
-- Author: TME Portal team
-- Type: SAFE - Can deploy before code? YES
-- Description: New enum value: overdue invoices

-- ============================================
-- SAFETY CHECK
-- ============================================
-- Safe to run before code deploy: YES
-- Rollback included: YES
-- Tested on: tme_portal_test
-- ============================================

BEGIN;

-- Forward Migration
ALTER TYPE invoice_status ADD VALUE IF NOT EXISTS 'overdue';

-- Migration tracking
INSERT INTO schema_migrations (version, description)
VALUES ('006_add_invoice_status_overdue', 'New enum value: overdue invoices')
ON CONFLICT (version) DO NOTHING;

COMMIT;

-- ============================================
-- ROLLBACK (Save this separately)
-- ============================================
-- BEGIN;
-- -- PostgreSQL cannot drop an enum value: rebuild the type without it.
-- UPDATE invoices SET status = 'sent' WHERE status = 'overdue';
-- ALTER TABLE invoices ALTER COLUMN status DROP DEFAULT;
-- ALTER TYPE invoice_status RENAME TO invoice_status_old;
-- CREATE TYPE invoice_status AS ENUM ('draft', 'sent', 'paid');
-- ALTER TABLE invoices ALTER COLUMN status TYPE invoice_status USING status::text::invoice_status;
-- ALTER TABLE invoices ALTER COLUMN status SET DEFAULT 'draft';
-- DROP TYPE invoice_status_old;
-- DELETE FROM schema_migrations WHERE version = '006_add_invoice_status_overdue';
-- COMMIT;
