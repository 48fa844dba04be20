-- Idempotency keys (the Idempotency-Key header), per tenant. A row is
-- inserted in the same transaction as the write it guards, before it, so a
-- concurrent duplicate waits on the primary key until that transaction
-- ends, then replays the stored answer (or, after a rollback, writes
-- itself). The answer columns are filled before that transaction commits:
-- a committed row always has them.
CREATE TABLE idempotency_keys (
    tenant_id   text NOT NULL REFERENCES tenants ON DELETE CASCADE,
    key         text NOT NULL,
    -- SHA-256 of the method, path and body (shadowbox_core::idempotency).
    fingerprint bytea NOT NULL,
    status      smallint,
    -- [[name, value], ...]: the answer's headers worth replaying.
    headers     jsonb,
    body        bytea,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, key)
);
-- The retention job's scan of expired keys.
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
