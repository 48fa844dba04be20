-- The event stream's log (GET /v1/tenants/{t}/events): one row per event,
-- written by the triggers below in the transaction that makes the event,
-- so every API replica streams every event and none exists without its
-- change (nor a change without its event).
--
-- Ids order events as they commit. `xid` is the writing transaction's id
-- and `seq` the order within it; a reader returns only rows whose `xid` is
-- below its snapshot's xmin horizon (pg_snapshot_xmin(pg_current_snapshot())),
-- i.e. rows of transactions that have all finished. Every transaction that
-- writes later gets a higher xid than that horizon, so no event can ever
-- appear behind an id a reader has passed: resuming after an id skips
-- nothing, also when a transaction that began earlier commits late (a bare
-- sequence value would be skipped exactly then).
CREATE TABLE events (
    xid        xid8 NOT NULL DEFAULT pg_current_xact_id(),
    seq        bigint GENERATED ALWAYS AS IDENTITY,
    tenant_id  text NOT NULL,
    event      text NOT NULL
               CHECK (event IN ('desired', 'delivered', 'applied', 'rejected', 'dead', 'rollout')),
    device_id  text,
    version    bigint,
    rollout_id bigint,
    at         timestamptz NOT NULL DEFAULT now(),
    -- The event's own fields beyond type, tenant, device, version and time.
    data       jsonb NOT NULL DEFAULT '{}',
    PRIMARY KEY (xid, seq)
);
-- A tenant's stream, in id order.
CREATE INDEX events_tenant ON events (tenant_id, xid, seq);

-- Every desired change (a history row) is a `desired` event.
CREATE FUNCTION events_desired() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO events (tenant_id, event, device_id, version, at, data)
    SELECT tenant_id, 'desired', device_id, version, committed_at,
           jsonb_build_object('change', change, 'actor', actor)
    FROM new_rows
    ORDER BY id;
    RETURN NULL;
END $$;

CREATE TRIGGER events_desired AFTER INSERT ON desired_history
REFERENCING NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION events_desired();

-- A row the relay marks delivered (PUBACK) or dead.
CREATE FUNCTION events_outbox() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO events (tenant_id, event, device_id, version, at, data)
    SELECT n.tenant_id, n.status, n.device_id, n.version,
           CASE WHEN n.status = 'delivered' THEN coalesce(n.delivered_at, now()) ELSE now() END,
           CASE WHEN n.status = 'delivered'
                THEN jsonb_build_object('outbox_id', n.id, 'kind', n.kind)
                ELSE jsonb_build_object('outbox_id', n.id, 'kind', n.kind,
                                        'attempts', n.attempts, 'last_error', n.last_error)
           END
    FROM new_rows n
    JOIN old_rows o ON o.id = n.id
    WHERE n.status IN ('delivered', 'dead') AND o.status <> n.status
    ORDER BY n.id;
    RETURN NULL;
END $$;

CREATE TRIGGER events_outbox AFTER UPDATE ON outbox
REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION events_outbox();

-- A device that reports a higher version applied it; a rejection the
-- ingester recorded is `rejected`.
CREATE FUNCTION events_reported() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO events (tenant_id, event, device_id, version, at, data)
    SELECT tenant_id, event, device_id, version, at, data FROM (
        SELECT n.tenant_id, 'applied' AS event, n.device_id, n.reported_version AS version,
               coalesce(n.last_seen, now()) AS at,
               jsonb_build_object('in_sync', n.reported_version >= n.desired_version) AS data
        FROM new_rows n
        JOIN old_rows o ON o.tenant_id = n.tenant_id AND o.device_id = n.device_id
        WHERE n.reported_version > o.reported_version
        UNION ALL
        SELECT n.tenant_id, 'rejected', n.device_id, n.rejected_version, n.rejected_at,
               jsonb_build_object('reason', n.rejected_reason)
        FROM new_rows n
        JOIN old_rows o ON o.tenant_id = n.tenant_id AND o.device_id = n.device_id
        WHERE n.rejected_at IS NOT NULL AND n.rejected_at IS DISTINCT FROM o.rejected_at
    ) e
    ORDER BY tenant_id, device_id, event;
    RETURN NULL;
END $$;

CREATE TRIGGER events_reported AFTER UPDATE ON device_state
REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION events_reported();
