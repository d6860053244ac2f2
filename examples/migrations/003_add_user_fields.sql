-- Migration: 003_add_user_fields.sql
-- Date: 2025-06-18
-- Author: TME Portal team
-- Type: SAFE - Can deploy before code? YES
-- Description: Nullable profile fields for users

-- ============================================
-- SAFETY CHECK
-- ============================================
-- Safe to run before code deploy: YES
-- Rollback included: YES
-- Tested on: tme_portal_test
-- ============================================

BEGIN;

-- Forward Migration
ALTER TABLE users ADD COLUMN IF NOT EXISTS phone VARCHAR(50);
ALTER TABLE users ADD COLUMN IF NOT EXISTS last_login_at TIMESTAMP;

-- Migration tracking
INSERT INTO schema_migrations (version, description)
VALUES ('003_add_user_fields', 'Nullable profile fields for users')
ON CONFLICT (version) DO NOTHING;

COMMIT;

-- ============================================
-- ROLLBACK (Save this separately)
-- ============================================
-- BEGIN;
-- ALTER TABLE users DROP COLUMN IF EXISTS last_login_at;
-- ALTER TABLE users DROP COLUMN IF EXISTS phone;
-- DELETE FROM schema_migrations WHERE version = '003_add_user_fields';
-- COMMIT;
