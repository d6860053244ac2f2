-- Migration: 011_add_client_notes.sql
-- Date: 2025-08-19
-- Author: TME Portal team
-- Type: SAFE - Can deploy before code? YES
-- Description: Free-text notes on clients

-- ============================================
-- SAFETY CHECK
-- ============================================
-- Safe to run before code deploy: YES
-- Rollback included: YES
-- Tested on: tme_portal_test
-- ============================================

BEGIN;

-- Forward Migration
ALTER TABLE clients ADD COLUMN IF NOT EXISTS notes TEXT;

-- Migration tracking
INSERT INTO schema_migrations (version, description)
VALUES ('011_add_client_notes', 'Free-text notes on clients')
ON CONFLICT (version) DO NOTHING;

COMMIT;

-- ============================================
-- ROLLBACK (Save this separately)
-- ============================================
-- BEGIN;
-- ALTER TABLE clients DROP COLUMN IF EXISTS notes;
-- DELETE FROM schema_migrations WHERE version = '011_add_client_notes';
-- COMMIT;
