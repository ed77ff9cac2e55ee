-- The notification outbox: one row per (channel, event), the dedupe record and the queue.
-- A row is pending until its channel acknowledged it (delivered) or its last try failed and
-- it went to notifications.dlq (dead). Finished rows are deleted after the retention period.
CREATE TABLE notify_messages (
    id              bigserial PRIMARY KEY,
    channel         text NOT NULL,
    dedupe_key      text NOT NULL,
    rule            text NOT NULL,
    -- the delivery id: set on insert for a message of its own, when first claimed for a digest
    batch           text,
    digest_key      text,
    language        text NOT NULL,
    timezone        text NOT NULL,
    notice          jsonb NOT NULL,
    event_at        timestamptz NOT NULL,
    send_after      timestamptz NOT NULL,
    next_attempt_at timestamptz NOT NULL,
    attempts        integer NOT NULL DEFAULT 0,
    state           text NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'delivered', 'dead')),
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz,
    UNIQUE (channel, dedupe_key)
);
CREATE INDEX notify_messages_due ON notify_messages (channel, next_attempt_at, id)
    WHERE state = 'pending';
CREATE INDEX notify_messages_batch ON notify_messages (channel, batch) WHERE state = 'pending';
CREATE INDEX notify_messages_digest ON notify_messages (channel, digest_key)
    WHERE state = 'pending' AND batch IS NULL;
CREATE INDEX notify_messages_finished ON notify_messages (finished_at) WHERE state <> 'pending';
