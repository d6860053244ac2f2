-- Migration: 004_create_invoice_status_enum.sql
-- Date: 2025-06-25
-- Author: TME Portal team
-- Type: SAFE - Can deploy before code? YES
-- Description: Invoice status type

-- ============================================
-- SAFETY CHECK
-- ============================================
-- Safe to run before code deploy: YES
-- Rollback included: YES
-- Tested on: tme_portal_test
-- ============================================

BEGIN;

-- Forward Migration
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_type WHERE typname = 'invoice_status') THEN
        CREATE TYPE invoice_status AS ENUM ('draft', 'sent', 'paid');
    END IF;
END
$$;

-- Migration tracking
INSERT INTO schema_migrations (version, description)
VALUES ('004_create_invoice_status_enum', 'Invoice status type')
ON CONFLICT (version) DO NOTHING;

COMMIT;

-- ============================================
-- ROLLBACK (Save this separately)
-- ============================================
-- BEGIN;
-- DROP TYPE IF EXISTS invoice_status;
-- DELETE FROM schema_migrations WHERE version = '004_create_invoice_status_enum';
-- COMMIT;
