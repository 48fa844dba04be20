-- Desired history: one row per desired change (registration, merge,
-- replacement, rollout, rollback, decommission), written by the
-- transaction that makes the change, with who made it. Delivery and
-- application are filled in when they happen, by the triggers below, so
-- no writer of the outbox or of reported state can forget them. Needs the
-- convergence migration's rejection columns on device_state.
CREATE TABLE desired_history (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id    text NOT NULL,
    device_id    text NOT NULL,
    -- The desired version the change made; a decommission carries the
    -- version it cleared (the version does not move).
    version      bigint NOT NULL,
    change       text NOT NULL
                 CHECK (change IN ('register', 'merge', 'replace', 'rollout', 'rollback', 'decommission')),
    -- What was sent: the merge patch, the replacement, the registration's
    -- document, the rollout's patch, the restored document; null for a
    -- decommission or a registration without a document.
    body         jsonb,
    -- 'admin', 'key:<api key id>' or 'rollout:<rollout id>'.
    actor        text NOT NULL,
    committed_at timestamptz NOT NULL DEFAULT now(),
    -- The first PUBACK of an outbox row carrying this change.
    delivered_at timestamptz,
    -- When the device first reported this very version.
    applied_at   timestamptz,
    -- The device's refusal of this version, if it refused it.
    rejection_reason text,
    rejected_at      timestamptz,
    FOREIGN KEY (tenant_id, device_id) REFERENCES device_state ON DELETE CASCADE
);
-- A device's history, newest first (the API's pages).
CREATE INDEX desired_history_device ON desired_history (tenant_id, device_id, id DESC);
-- The rows a delivery or a report fills in.
CREATE INDEX desired_history_version ON desired_history (tenant_id, device_id, version);
-- The retention job's scan.
CREATE INDEX desired_history_committed ON desired_history (committed_at);

-- A PUBACK fills in delivered_at of the change its row carries (a clear
-- row is its decommission's). Statement-level with transition tables, so
-- a relay batch fills its rows in one set-based statement. Rows are
-- locked in id order, as the reported-state trigger does, so the relay
-- and the ingester never deadlock on the same history rows.
CREATE FUNCTION desired_history_delivered() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
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
    RETURN NULL;
END $$;

CREATE TRIGGER desired_history_delivered AFTER UPDATE ON outbox
REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION desired_history_delivered();

-- A report of a higher version fills in applied_at of the change that
-- made that version (versions the device skipped were never applied as
-- such: a newer one superseded them); a rejection the ingester recorded
-- fills in the rejection of the change it refuses.
CREATE FUNCTION desired_history_reported() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
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
    RETURN NULL;
END $$;

CREATE TRIGGER desired_history_reported AFTER UPDATE ON device_state
REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION desired_history_reported();
