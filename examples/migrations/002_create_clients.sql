-- Migration: 002_create_clients.sql
-- Date: 2025-06-10
-- Author: TME Portal team
-- Type: SAFE - Can deploy before code? YES
-- Description: Clients of the company formation business

-- ============================================
-- SAFETY CHECK
-- ============================================
-- Safe to run before code deploy: YES
-- Rollback included: YES
-- Tested on: tme_portal_test
-- ============================================

BEGIN;

-- Forward Migration
CREATE TABLE IF NOT EXISTS clients (
    id SERIAL PRIMARY KEY,
    company_name VARCHAR(255) NOT NULL,
    contact_email VARCHAR(255),
    phone VARCHAR(50),
    country_code CHAR(2),
    created_by INTEGER REFERENCES users(id),
    created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);

-- Migration tracking
INSERT INTO schema_migrations (version, description)
VALUES ('002_create_clients', 'Clients of the company formation business')
ON CONFLICT (version) DO NOTHING;

COMMIT;

-- ============================================
-- ROLLBACK (Save this separately)
-- ============================================
-- BEGIN;
-- DROP TABLE IF EXISTS clients;
-- DELETE FROM schema_migrations WHERE version = '002_create_clients';
-- COMMIT;
