-- shadowbox schema: tenants, API keys, device shadows and the delivery outbox.

CREATE TABLE tenants (
    tenant_id  text PRIMARY KEY,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Tenant API keys. Only the SHA-256 of the secret is stored; the secret is
-- shown once, when the key is created.
CREATE TABLE api_keys (
    id          uuid PRIMARY KEY,
    tenant_id   text NOT NULL REFERENCES tenants ON DELETE CASCADE,
    secret_hash bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX api_keys_tenant ON api_keys (tenant_id);

-- One row per device: its status and both halves of its shadow. Desired
-- writes, decommissioning and reported writes all take this row's lock, so
-- they serialize per device without any other coordination.
CREATE TABLE device_state (
    tenant_id         text NOT NULL REFERENCES tenants ON DELETE CASCADE,
    device_id         text NOT NULL,
    status            text NOT NULL DEFAULT 'active'
                      CHECK (status IN ('active', 'decommissioned')),
    desired_state     jsonb NOT NULL DEFAULT '{}',
    desired_version   bigint NOT NULL DEFAULT 0 CHECK (desired_version >= 0),
    reported_state    jsonb NOT NULL DEFAULT '{}',
    reported_version  bigint NOT NULL DEFAULT 0 CHECK (reported_version >= 0),
    last_seen         timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    decommissioned_at timestamptz,
    PRIMARY KEY (tenant_id, device_id)
);

-- One row per publish. Column names are a contract: operators query them.
CREATE TABLE outbox (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id       text NOT NULL,
    device_id       text NOT NULL,
    kind            text NOT NULL CHECK (kind IN ('desired', 'clear')),
    topic           text NOT NULL,
    payload         bytea NOT NULL,
    version         bigint NOT NULL,
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'delivered', 'superseded', 'dead')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    delivered_at    timestamptz,
    FOREIGN KEY (tenant_id, device_id) REFERENCES device_state ON DELETE CASCADE
);

-- The relay's work queue: only pending rows, in the order they fall due.
-- Stays small however many finished rows the table holds.
CREATE INDEX outbox_pending_due ON outbox (next_attempt_at, id) WHERE status = 'pending';
-- A device's rows, newest first: the relay's "newest row wins" check, the
-- device's deliveries and the shadow's delivery summary.
CREATE INDEX outbox_device ON outbox (tenant_id, device_id, id DESC);
-- A tenant's rows by status, newest first.
CREATE INDEX outbox_tenant_status ON outbox (tenant_id, status, id DESC);
-- The retention job's scan of finished rows.
CREATE INDEX outbox_finished ON outbox (created_at) WHERE status IN ('delivered', 'superseded');

-- "Is delivery healthy?" at a glance: SELECT * FROM outbox_status;
CREATE VIEW outbox_status AS
SELECT tenant_id,
       status,
       count(*) AS count,
       min(created_at) AS oldest_created_at,
       extract(epoch FROM now() - min(created_at))::double precision AS oldest_age_seconds
FROM outbox
GROUP BY tenant_id, status;
