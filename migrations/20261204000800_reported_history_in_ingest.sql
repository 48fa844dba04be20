-- A reported state's history and events (a device applied a version, or
-- refused one) are written by the ingester's statement itself
-- (`crates/shadowbox-db/src/reported.rs`, `apply_reported`), the one
-- writer of reported state, no longer by statement-level triggers on
-- device_state. Those triggers ran on every update of the table, each
-- desired write's and rollout chunk's too, where they had nothing to do:
-- planning their two transition-table joins took 0.37 ms of a PATCH's
-- 0.45 ms device update (EXPLAIN ANALYZE, 10,000 devices).
DROP TRIGGER desired_history_reported ON device_state;
DROP TRIGGER events_reported ON device_state;
DROP FUNCTION desired_history_reported();
DROP FUNCTION events_reported();
