-- Migration: 015_create_user_preferences.sql
-- Date: 2025-09-15
-- Author: TME Portal team
-- Type: SAFE - Can deploy before code? YES
-- Description: Per-user preferences (the guide's 016 example, renumbered)

-- ============================================
-- SAFETY CHECK
-- ============================================
-- Safe to run before code deploy: YES
-- Rollback included: YES
-- Tested on: tme_portal_test
-- ============================================

BEGIN;

-- Forward Migration
CREATE TABLE IF NOT EXISTS user_preferences (
    user_id INTEGER PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    language VARCHAR(10) NOT NULL DEFAULT 'en',
    timezone VARCHAR(50) NOT NULL DEFAULT 'Asia/Dubai',
    email_notifications BOOLEAN DEFAULT true
);

-- Migration tracking
INSERT INTO schema_migrations (version, description)
VALUES ('015_create_user_preferences', 'Per-user preferences (the guide''s 016 example, renumbered)')
ON CONFLICT (version) DO NOTHING;

COMMIT;

-- ============================================
-- ROLLBACK (Save this separately)
-- ============================================
-- BEGIN;
-- DROP TABLE IF EXISTS user_preferences;
-- DELETE FROM schema_migrations WHERE version = '015_create_user_preferences';
-- COMMIT;
