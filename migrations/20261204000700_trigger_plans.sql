-- The statement-level triggers that join a statement's transition tables
-- (old_rows with new_rows) plan that join on every call, for the size of
-- the statement at hand. PL/pgSQL keeps one plan per session for a query
-- without parameters, made for the first statement the session saw: after
-- a PATCH (one row) it was a nested loop, which a rollout's chunk of 2000
-- devices, a relay batch of 500 rows or an ingester batch then ran as
-- 2000 x 2000 comparisons (3.5-4 s per chunk). Planning each call costs
-- about 0.03 ms; a statement that changed no row (a PATCH's supersede of
-- nothing, most often) returns before it. The queries are the ones of the
-- desired_history and events migrations, unchanged.

CREATE OR REPLACE FUNCTION desired_history_delivered() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT FROM new_rows) THEN
        RETURN NULL;
    END IF;
    EXECUTE $q$
    UPDATE desired_history h SET delivered_at = d.delivered_at
    FROM (SELECT h2.id, n.delivered_at
          FROM new_rows n
          JOIN old_rows o ON o.id = n.id
          JOIN desired_history h2
            ON h2.tenant_id = n.tenant_id AND h2.device_id = n.device_id
           AND h2.version = n.version
           AND (h2.change = 'decommission') = (n.kind = 'clear')
          WHERE n.status = 'delivered' AND o.status <> 'delivered'
            AND h2.delivered_at IS NULL
          ORDER BY h2.id
          FOR UPDATE OF h2) d
    WHERE h.id = d.id;
    $q$;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION desired_history_reported() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT FROM new_rows) THEN
        RETURN NULL;
    END IF;
    EXECUTE $q$
    UPDATE desired_history h SET
        applied_at = coalesce(h.applied_at, r.applied_at),
        rejection_reason = coalesce(r.rejection_reason, h.rejection_reason),
        rejected_at = coalesce(r.rejected_at, h.rejected_at)
    FROM (SELECT h2.id,
                 CASE WHEN n.reported_version > o.reported_version
                       AND h2.version = n.reported_version
                      THEN coalesce(n.last_seen, now()) END AS applied_at,
                 CASE WHEN n.rejected_at IS DISTINCT FROM o.rejected_at
                       AND h2.version = n.rejected_version
                      THEN n.rejected_reason END AS rejection_reason,
                 CASE WHEN n.rejected_at IS DISTINCT FROM o.rejected_at
                       AND h2.version = n.rejected_version
                      THEN n.rejected_at END AS rejected_at
          FROM new_rows n
          JOIN old_rows o ON o.tenant_id = n.tenant_id AND o.device_id = n.device_id
          JOIN desired_history h2
            ON h2.tenant_id = n.tenant_id AND h2.device_id = n.device_id
           AND h2.change <> 'decommission'
           AND ((n.reported_version > o.reported_version
                 AND h2.version = n.reported_version AND h2.applied_at IS NULL)
                OR (n.rejected_at IS DISTINCT FROM o.rejected_at AND n.rejected_at IS NOT NULL
                    AND h2.version = n.rejected_version))
          ORDER BY h2.id
          FOR UPDATE OF h2) r
    WHERE h.id = r.id;
    $q$;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION events_outbox() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT FROM new_rows) THEN
        RETURN NULL;
    END IF;
    EXECUTE $q$
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
    $q$;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION events_reported() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT FROM new_rows) THEN
        RETURN NULL;
    END IF;
    EXECUTE $q$
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
    $q$;
    RETURN NULL;
END $$;
