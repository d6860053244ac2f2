-- Migration: 001_initial_schema.sql
-- Date: 2025-06-02
-- Author: TME Portal team
-- Type: SAFE - Can deploy before code? YES
-- Description: Users and sessions of the portal

-- ============================================
-- SAFETY CHECK
-- ============================================
-- Safe to run before code deploy: YES
-- Rollback included: YES
-- Tested on: tme_portal_test
-- ============================================

BEGIN;

-- Forward Migration
CREATE TABLE IF NOT EXISTS users (
    id SERIAL PRIMARY KEY,
    email VARCHAR(255) NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    full_name VARCHAR(200),
    role VARCHAR(50) NOT NULL DEFAULT 'staff',
    created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE TABLE IF NOT EXISTS sessions (
    id UUID PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    expires_at TIMESTAMP NOT NULL
);

-- Migration tracking
INSERT INTO schema_migrations (version, description)
VALUES ('001_initial_schema', 'Users and sessions of the portal')
ON CONFLICT (version) DO NOTHING;

COMMIT;

-- ============================================
-- ROLLBACK (Save this separately)
-- ============================================
-- BEGIN;
-- DROP TABLE IF EXISTS sessions;
-- DROP TABLE IF EXISTS users;
-- DELETE FROM schema_migrations WHERE version = '001_initial_schema';
-- COMMIT;
