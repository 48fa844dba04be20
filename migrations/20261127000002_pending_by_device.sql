-- A device's pending rows, found without walking its whole history: every
-- write supersedes them, and the relay checks them when it claims.
CREATE INDEX outbox_pending_device ON outbox (tenant_id, device_id, id) WHERE status = 'pending';
