-- Migration: 005_create_invoices.sql
-- Date: 2025-07-01
-- Author: TME Portal team
-- Type: SAFE - Can deploy before code? YES
-- Description: Invoices and their lines

-- ============================================
-- SAFETY CHECK
-- ============================================
-- Safe to run before code deploy: YES
-- Rollback included: YES (005_create_invoices.rollback.sql)
-- Tested on: tme_portal_test
-- ============================================

BEGIN;

-- Forward Migration
CREATE TABLE IF NOT EXISTS invoices (
    id SERIAL PRIMARY KEY,
    client_id INTEGER NOT NULL REFERENCES clients(id),
    number VARCHAR(30) NOT NULL UNIQUE,
    status invoice_status NOT NULL DEFAULT 'draft',
    issued_on DATE,
    due_on DATE,
    total_cents BIGINT NOT NULL DEFAULT 0,
    currency CHAR(3) NOT NULL DEFAULT 'AED'
);
CREATE TABLE IF NOT EXISTS invoice_lines (
    id SERIAL PRIMARY KEY,
    invoice_id INTEGER NOT NULL REFERENCES invoices(id) ON DELETE CASCADE,
    description TEXT NOT NULL,
    quantity NUMERIC(10,2) NOT NULL DEFAULT 1,
    unit_price_cents BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_invoices_client_id ON invoices(client_id);

-- Migration tracking
INSERT INTO schema_migrations (version, description)
VALUES ('005_create_invoices', 'Invoices and their lines')
ON CONFLICT (version) DO NOTHING;

COMMIT;
