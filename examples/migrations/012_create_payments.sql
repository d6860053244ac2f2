-- Migration: 012_create_payments.sql
-- Date: 2025-08-27
-- Author: TME Portal team
-- Type: SAFE - Can deploy before code? YES
-- Description: Payments received against invoices

-- ============================================
-- SAFETY CHECK
-- ============================================
-- Safe to run before code deploy: YES
-- Rollback included: YES
-- Tested on: tme_portal_test
-- ============================================

BEGIN;

-- Forward Migration
CREATE TABLE IF NOT EXISTS payments (
    id SERIAL PRIMARY KEY,
    invoice_id INTEGER NOT NULL REFERENCES invoices(id),
    amount_cents BIGINT NOT NULL CHECK (amount_cents > 0),
    received_on DATE NOT NULL DEFAULT CURRENT_DATE,
    method VARCHAR(30) NOT NULL DEFAULT 'bank_transfer'
);
CREATE OR REPLACE VIEW invoice_balances AS
    SELECT i.id AS invoice_id, i.total_cents - COALESCE(SUM(p.amount_cents), 0) AS balance_cents
    FROM invoices i LEFT JOIN payments p ON p.invoice_id = i.id
    GROUP BY i.id;

-- Migration tracking
INSERT INTO schema_migrations (version, description)
VALUES ('012_create_payments', 'Payments received against invoices')
ON CONFLICT (version) DO NOTHING;

COMMIT;

-- ============================================
-- ROLLBACK (Save this separately)
-- ============================================
-- BEGIN;
-- DROP VIEW IF EXISTS invoice_balances;
-- DROP TABLE IF EXISTS payments;
-- DELETE FROM schema_migrations WHERE version = '012_create_payments';
-- COMMIT;
