-- API keys (stored hashed), per-key quota windows shared by all gateway replicas, and the usage ledger.
CREATE TABLE api_keys (
    id                text        PRIMARY KEY,          -- public key id, also the key's prefix
    name              text        NOT NULL UNIQUE,
    tenant_id         text        NOT NULL,
    secret_sha256     bytea       NOT NULL,             -- sha256 of the whole key; the key itself is never stored
    models            text[],                           -- NULL: every model
    rpm               integer,                          -- requests per minute; NULL: unlimited
    tpm               integer,                          -- tokens per minute (prompt + completion)
    max_budget_tokens bigint,                           -- lifetime token budget
    spent_tokens      bigint      NOT NULL DEFAULT 0,
    created_at        timestamptz NOT NULL DEFAULT now(),
    revoked_at        timestamptz
);

-- Every change to a key reaches every gateway replica at once (their caches LISTEN on this channel).
CREATE FUNCTION flotilla_notify_key_change() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('flotilla_keys', COALESCE(NEW.id, OLD.id));
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER api_keys_notify AFTER INSERT OR UPDATE OR DELETE ON api_keys
    FOR EACH ROW EXECUTE FUNCTION flotilla_notify_key_change();

-- One row per key, kind ('requests' | 'tokens') and minute; replicas lease chunks of `limit_value`.
CREATE TABLE quota_windows (
    key_id       text        NOT NULL,
    kind         text        NOT NULL,
    window_start timestamptz NOT NULL,
    used         bigint      NOT NULL DEFAULT 0,       -- leased out to replicas (minus what they gave back)
    last_grant   bigint      NOT NULL DEFAULT 0,
    PRIMARY KEY (key_id, kind, window_start)
);

-- Exactly one row per request: the id is unique, so replaying a spooled row is harmless.
CREATE TABLE usage_ledger (
    id                text        PRIMARY KEY,         -- chatcmpl-… / cmpl-… id the client saw
    request_id        text        NOT NULL,            -- x-request-id
    key_id            text        NOT NULL,
    tenant_id         text        NOT NULL,
    endpoint          text        NOT NULL,
    model             text        NOT NULL,
    prompt_tokens     integer     NOT NULL,
    completion_tokens integer     NOT NULL,
    ttft_ms           real,
    latency_ms        real        NOT NULL,
    status            integer     NOT NULL,
    finish_reason     text,
    guard_verdict     text,
    guard_findings    text[]      NOT NULL DEFAULT '{}',
    created_at        timestamptz NOT NULL
);
CREATE INDEX usage_ledger_key_time_idx ON usage_ledger (key_id, created_at);
