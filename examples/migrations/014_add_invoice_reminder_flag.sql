-- Migration: 014_add_invoice_reminder_flag.sql
-- Date: 2025-09-10
-- Author: TME Portal team
-- Type: SAFE - Can deploy before code? YES
-- Description: Reminder flag with a default

-- ============================================
-- SAFETY CHECK
-- ============================================
-- Safe to run before code deploy: YES
-- Rollback included: YES
-- Tested on: tme_portal_test
-- ============================================

BEGIN;

-- Forward Migration
ALTER TABLE invoices ADD COLUMN IF NOT EXISTS reminder_sent BOOLEAN DEFAULT false;
CREATE INDEX IF NOT EXISTS idx_invoices_reminder_sent ON invoices(reminder_sent) WHERE reminder_sent = false;

-- Migration tracking
INSERT INTO schema_migrations (version, description)
VALUES ('014_add_invoice_reminder_flag', 'Reminder flag with a default')
ON CONFLICT (version) DO NOTHING;

COMMIT;

-- ============================================
-- ROLLBACK (Save this separately)
-- ============================================
-- BEGIN;
-- DROP INDEX IF EXISTS idx_invoices_reminder_sent;
-- ALTER TABLE invoices DROP COLUMN IF EXISTS reminder_sent;
-- DELETE FROM schema_migrations WHERE version = '014_add_invoice_reminder_flag';
-- COMMIT;
