-- Migration: 010_create_audit_log.sql
-- Date: 2025-08-08
-- Author: TME Portal team
-- Type: SAFE - Can deploy before code? YES
-- Description: Audit log of user actions

-- ============================================
-- SAFETY CHECK
-- ============================================
-- Safe to run before code deploy: YES
-- Rollback included: YES
-- Tested on: tme_portal_test
-- ============================================

BEGIN;

-- Forward Migration
CREATE TABLE IF NOT EXISTS audit_log (
    id BIGSERIAL PRIMARY KEY,
    user_id INTEGER REFERENCES users(id),
    action VARCHAR(100) NOT NULL,
    entity VARCHAR(100),
    entity_id INTEGER,
    details JSONB,
    created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX IF NOT EXISTS idx_audit_log_created_at ON audit_log(created_at);

-- Migration tracking
INSERT INTO schema_migrations (version, description)
VALUES ('010_create_audit_log', 'Audit log of user actions')
ON CONFLICT (version) DO NOTHING;

COMMIT;

-- ============================================
-- ROLLBACK (Save this separately)
-- ============================================
-- BEGIN;
-- DROP TABLE IF EXISTS audit_log;
-- DELETE FROM schema_migrations WHERE version = '010_create_audit_log';
-- COMMIT;
