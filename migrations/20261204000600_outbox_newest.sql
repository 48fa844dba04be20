-- A device's newest outbox row: the one home of "newest row per device",
-- which the shadow's delivery summary, the relay's "newest row wins" claim
-- and the retention job (it keeps each device's newest row) all ask for.
-- A plain SQL function, STABLE and not STRICT, so the planner inlines it
-- into each query: the plan is the same backward scan of `outbox_device`
-- as the subquery written out.
CREATE FUNCTION outbox_newest(p_tenant_id text, p_device_id text)
RETURNS SETOF outbox
LANGUAGE sql STABLE
AS $$
  SELECT * FROM outbox
  WHERE tenant_id = p_tenant_id AND device_id = p_device_id
  ORDER BY id DESC
  LIMIT 1
$$;
