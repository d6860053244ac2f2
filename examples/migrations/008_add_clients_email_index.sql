-- Migration: 008_add_clients_email_index.sql
-- Date: 2025-07-22
-- Author: TME Portal team
-- Type: SAFE - Can deploy before code? YES
-- Description: Index client e-mails without blocking writes

-- ============================================
-- SAFETY CHECK
-- ============================================
-- Safe to run before code deploy: YES
-- Rollback included: YES (008_add_clients_email_index.rollback.sql)
-- Tested on: tme_portal_test
-- ============================================

-- CREATE INDEX CONCURRENTLY cannot run inside a transaction block, so this file has no
-- BEGIN/COMMIT: psql runs each statement on its own, and tme.migrations runs the index build
-- outside a transaction, recording its progress.
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_clients_contact_email ON clients (contact_email);

-- Migration tracking
INSERT INTO schema_migrations (version, description)
VALUES ('008_add_clients_email_index', 'Index client e-mails without blocking writes')
ON CONFLICT (version) DO NOTHING;
