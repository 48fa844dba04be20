-- Dead rows, counted by every relay for shadowbox_relay_dead_rows (and the
-- ShadowboxOutboxDeadRows alert) every few seconds: a partial index holds
-- only them, so the count never walks the finished rows.
CREATE INDEX outbox_dead ON outbox (created_at) WHERE status = 'dead';
