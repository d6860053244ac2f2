-- Migration: 007_create_documents.sql
-- Date: 2025-07-15
-- Author: TME Portal team
-- Type: SAFE - Can deploy before code? YES
-- Description: Uploaded client documents (passports, licences)

-- ============================================
-- SAFETY CHECK
-- ============================================
-- Safe to run before code deploy: YES
-- Rollback included: YES
-- Tested on: tme_portal_test
-- ============================================

BEGIN;

-- Forward Migration
CREATE TABLE IF NOT EXISTS documents (
    id SERIAL PRIMARY KEY,
    client_id INTEGER NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    kind VARCHAR(50) NOT NULL,
    storage_key TEXT NOT NULL,
    uploaded_by INTEGER REFERENCES users(id),
    uploaded_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);

-- Migration tracking
INSERT INTO schema_migrations (version, description)
VALUES ('007_create_documents', 'Uploaded client documents (passports, licences)')
ON CONFLICT (version) DO NOTHING;

COMMIT;

-- ============================================
-- ROLLBACK (Save this separately)
-- ============================================
-- BEGIN;
-- DROP TABLE IF EXISTS documents;
-- DELETE FROM schema_migrations WHERE version = '007_create_documents';
-- COMMIT;
