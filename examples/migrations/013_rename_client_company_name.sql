-- Migration: 013_rename_client_company_name.sql
-- Date: 2025-09-03
-- Author: TME Portal team
-- Type: BREAKING - Can deploy before code? NO
-- Description: Rename clients.company_name to legal_name (the app release 2.4 reads legal_name)

-- ============================================
-- SAFETY CHECK
-- ============================================
-- Safe to run before code deploy: NO - MUST COORDINATE WITH CODE RELEASE
-- Rollback included: YES
-- Tested on: tme_portal_test
-- ============================================

BEGIN;

-- Forward Migration
ALTER TABLE clients RENAME COLUMN company_name TO legal_name;

-- Migration tracking
INSERT INTO schema_migrations (version, description)
VALUES ('013_rename_client_company_name', 'Rename clients.company_name to legal_name (the app release 2.4 reads legal_name)')
ON CONFLICT (version) DO NOTHING;

COMMIT;

-- ============================================
-- ROLLBACK (Save this separately)
-- ============================================
-- BEGIN;
-- ALTER TABLE clients RENAME COLUMN legal_name TO company_name;
-- DELETE FROM schema_migrations WHERE version = '013_rename_client_company_name';
-- COMMIT;
