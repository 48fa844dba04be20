-- Convergence: when each desired version was committed and applied, and
-- the device's refusal of a version.
--
-- desired_committed_at  when the current desired_version was committed (the
--                       writing transaction's start, like outbox.created_at)
-- applied_at            when reported_version first reached the current
--                       desired_version; NULL until then (and at version 0)
-- rejected_version,     the newest rejection the ingester recorded: the
-- rejected_reason,      device refused desired version rejected_version.
-- rejected_at           It concerns the device while rejected_version is
--                       its desired_version and not yet applied.
ALTER TABLE device_state
    ADD COLUMN desired_committed_at timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN applied_at           timestamptz,
    ADD COLUMN rejected_version     bigint,
    ADD COLUMN rejected_reason      text CHECK (char_length(rejected_reason) <= 256),
    ADD COLUMN rejected_at          timestamptz,
    ADD CONSTRAINT device_state_rejection_whole CHECK (
        (rejected_version IS NULL) = (rejected_reason IS NULL)
        AND (rejected_version IS NULL) = (rejected_at IS NULL));

-- Existing devices: the commit of their current version is the newest
-- outbox row carrying it (else their registration); a device in sync is
-- taken as applied when it was last seen (the best time known).
UPDATE device_state d SET
    desired_committed_at = coalesce(
        (SELECT max(o.created_at) FROM outbox o
         WHERE o.tenant_id = d.tenant_id AND o.device_id = d.device_id
           AND o.version = d.desired_version AND o.kind = 'desired'),
        d.created_at),
    applied_at = CASE WHEN d.desired_version > 0 AND d.reported_version >= d.desired_version
                      THEN coalesce(d.last_seen, d.updated_at) END;

-- Every writer of a new desired version (a PATCH or PUT, a rollout, a
-- rollback) starts its convergence clock here, so none can forget to.
-- Fires only when desired_version changes: the ingester's updates never
-- call it.
CREATE FUNCTION device_state_new_desired_version() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.desired_committed_at := now();
    NEW.applied_at := CASE WHEN NEW.reported_version >= NEW.desired_version THEN now() END;
    RETURN NEW;
END
$$;

CREATE TRIGGER device_state_new_desired_version
    BEFORE UPDATE OF desired_version ON device_state
    FOR EACH ROW
    WHEN (OLD.desired_version IS DISTINCT FROM NEW.desired_version)
    EXECUTE FUNCTION device_state_new_desired_version();

-- Devices that have not applied their desired version, in id order: the
-- device list's `in_sync=false` (with or without `older_than`) walks only
-- them. Small in a healthy fleet; an ingester's update touches it only when
-- reported_version changes, which reports of an unchanged version do not.
CREATE INDEX device_state_not_in_sync ON device_state (tenant_id, device_id)
    WHERE reported_version < desired_version;
