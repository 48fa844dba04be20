-- A delivery's history (delivered_at of the change a row carries) and its
-- `delivered` or `dead` event are written by the relay's statements
-- themselves (`crates/shadowbox-db/src/relay.rs`, `mark_delivered` and
-- `mark_failed`), the one writer of deliveries, no longer by
-- statement-level triggers on outbox. Those triggers planned their
-- transition-table joins on every update of the table: 0.7 of the 0.86 ms
-- a relay batch of 6 rows took to settle (EXPLAIN ANALYZE, 10,000 devices),
-- about a third of PostgreSQL's time under single writes; and every
-- PATCH that superseded a pending row paid them too.
DROP TRIGGER desired_history_delivered ON outbox;
DROP TRIGGER events_outbox ON outbox;
DROP FUNCTION desired_history_delivered();
DROP FUNCTION events_outbox();
