import ParleyPostgres

/// The link service's tables (docs/architecture.md, "Storage"), as migrations compiled into the
/// binary so a deployed service never looks for SQL files. Apply with
/// `Migrator(migrations: LinkSchema.migrations, schema: "parley_link")`.
///
/// The rules users rely on are constraints here, not only code: a member (system, entity type,
/// native id) belongs to one global entity (primary key); a global entity has at most one member
/// per system (unique); at most one write is in flight per global entity and target (primary
/// key); a message id is processed once (inbox primary key).
public enum LinkSchema {
    public static let migrations: [Migration] = [
        Migration(
            version: 1, name: "link",
            sql: """
                create table global_entity (
                    id           uuid primary key,
                    entity_type  text not null check (entity_type in ('customer', 'order', 'product')),
                    -- Flat canonical values (references as global refs) and, per merge field,
                    -- {"system": ..., "modifiedAt": <ms>} of the change that set it.
                    state        jsonb not null default '{}',
                    provenance   jsonb not null default '{}',
                    created_at   timestamptz not null default now(),
                    updated_at   timestamptz not null default now()
                );

                create table member (
                    global_id           uuid not null references global_entity (id),
                    system              text not null,
                    entity_type         text not null,
                    native_id           text not null,
                    -- What we last knew the member to hold: {"fields": [...], "values": {...}}; the
                    -- last change seen from it, or the expected echo of our last write to it.
                    snapshot            jsonb,
                    snapshot_hash       text,
                    source_modified_at  timestamptz,
                    written_hash        text,
                    created_at          timestamptz not null default now(),
                    primary key (system, entity_type, native_id),
                    unique (global_id, system)
                );

                -- Natural keys for matching (DESIGN rule 3): organisation number, e-mail, SKU.
                create table natural_key (
                    entity_type  text not null,
                    kind         text not null check (kind in ('organizationNumber', 'email', 'sku')),
                    value        text not null check (value <> ''),
                    global_id    uuid not null references global_entity (id),
                    primary key (entity_type, kind, value, global_id)
                );
                create index natural_key_by_entity on natural_key (global_id);

                -- One write in flight per (global entity, target system) (rule 8).
                create table write_slot (
                    global_id        uuid not null references global_entity (id),
                    system           text not null,
                    write_id         text not null,
                    operation        text not null check (operation in ('create', 'update', 'archive')),
                    idempotency_key  text not null,
                    lease_until      timestamptz not null,
                    pending          boolean not null default false,
                    primary key (global_id, system)
                );
                create index write_slot_by_lease on write_slot (lease_until);

                -- Entities waiting for a referenced entity to get a record in the target (rule 6).
                create table parked (
                    global_id    uuid not null references global_entity (id),
                    system       text not null,
                    -- The global refs (`customer/<uuid>`) that have no record in `system` yet.
                    waiting_for  jsonb not null,
                    reason       text not null,
                    parked_at    timestamptz not null default now(),
                    primary key (global_id, system)
                );
                create index parked_waiting_for on parked using gin (waiting_for);

                -- Entities a target refused or that could not be mapped for it (rule 10).
                create table failed (
                    global_id   uuid not null references global_entity (id),
                    system      text not null,
                    kind        text not null,
                    reason      text not null,
                    transient   boolean not null,
                    attempts    integer not null default 1,
                    retry_at    timestamptz,
                    failed_at   timestamptz not null default now(),
                    primary key (global_id, system)
                );

                -- Two records in one system matching one global entity (rule 3): held, not propagated.
                create table conflict (
                    global_id    uuid not null references global_entity (id),
                    system       text not null,
                    native_id    text not null,
                    member_id    text not null,
                    reason       text not null,
                    detected_at  timestamptz not null default now(),
                    primary key (system, native_id, global_id)
                );

                -- Processed message ids (redelivery changes nothing), pruned after a retention period.
                create table inbox (
                    message_id    uuid primary key,
                    processed_at  timestamptz not null default now()
                );
                create index inbox_by_time on inbox (processed_at);

                -- Messages to publish after commit, with confirms, then deleted.
                create table outbox (
                    id           bigserial primary key,
                    message_id   uuid not null unique,
                    exchange     text not null,
                    routing_key  text not null,
                    body         bytea not null,
                    created_at   timestamptz not null default now(),
                    -- A relay publishing the row holds it until then; after that another may take it.
                    claimed_until timestamptz
                );
                """),
        // A change from the target that arrived while a write to it was in flight: compared
        // with the write's expected echo once the write's outcome is known (rule 5).
        Migration(
            version: 2, name: "held_change",
            sql: """
                alter table write_slot add column held jsonb;
                """),
        // A record's change that names records of its own system Parley has not seen yet (an
        // order's customer or products) waits until each of them is a member (rule 6). Before,
        // such a reference made an empty global entity for the record, which then skipped
        // matching when the record's own change arrived (a second entity for one SKU).
        Migration(
            version: 3, name: "waiting_change",
            sql: """
                create table waiting_change (
                    system         text not null,
                    entity_type    text not null,
                    native_id      text not null,
                    -- The records it names that were no member: [[system, entity type, native id], ...].
                    waiting_for    jsonb not null,
                    -- The source's modification time (ms): a newer change of the record replaces it.
                    modified_at    bigint not null,
                    envelope       bytea not null,
                    reason         text not null,
                    -- A change that could not be handled once its records were there: tried again then.
                    attempts       integer not null default 0,
                    retry_at       timestamptz,
                    waiting_since  timestamptz not null default now(),
                    primary key (system, entity_type, native_id)
                );
                create index waiting_change_for on waiting_change using gin (waiting_for);
                """)
    ]
}
