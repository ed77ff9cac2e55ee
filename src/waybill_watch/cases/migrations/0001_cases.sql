-- Cases, their outgoing events (transactional outbox) and sign-in accounts.
-- A case is a JSONB document; the columns beside it are what the queue, the timers and the
-- review filter, sort and group on. They are written from the document on every save.
CREATE TABLE cases (
    case_id          text PRIMARY KEY,
    scope            text NOT NULL,
    subject          text NOT NULL,
    waybill          text,
    merchant         text,
    courier          text,
    site             text,
    origin_city      text,
    destination_city text,
    type             text NOT NULL,
    types            text[] NOT NULL,
    status           text NOT NULL,
    outcome          text,
    opened_at        timestamptz NOT NULL,
    closed_at        timestamptz,
    updated_at       timestamptz NOT NULL,
    next_due_at      timestamptz,
    next_timer_at    timestamptz,
    rank             double precision NOT NULL,
    steps_finished   integer NOT NULL DEFAULT 0,
    steps_on_time    integer NOT NULL DEFAULT 0,
    doc              jsonb NOT NULL
);
CREATE INDEX cases_queue ON cases (rank, case_id);
CREATE INDEX cases_merchant_queue ON cases (merchant, rank, case_id);
CREATE INDEX cases_timers ON cases (next_timer_at) WHERE status = 'open' AND next_timer_at IS NOT NULL;
CREATE INDEX cases_opened ON cases (opened_at);
CREATE INDEX cases_types ON cases USING gin (types);
CREATE INDEX cases_courier ON cases (courier, rank);

CREATE TABLE outbox (
    id         bigserial PRIMARY KEY,
    case_id    text NOT NULL,
    value      bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE accounts (
    username      text PRIMARY KEY,
    password_hash text NOT NULL,
    role          text NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
    merchant      text,
    created_at    timestamptz NOT NULL DEFAULT now()
);
