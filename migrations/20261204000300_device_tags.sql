-- Device tags: service-side labels that select devices, never published.
--
-- A table of (key, value) rows rather than a jsonb column: its B-tree
-- index (tenant_id, key, value, device_id) answers a tag selector with an
-- index range already in device id order, so a page of `?tag=site:berlin`
-- over 10^6 devices reads one page of index entries (a jsonb GIN index
-- would return every match unordered, to be sorted for each page), a
-- rollout's selection reads only the matching entries, and the planner
-- has real statistics on keys and values (it has none for jsonb `@>`).
CREATE TABLE device_tags (
    tenant_id text NOT NULL,
    device_id text NOT NULL,
    key       text NOT NULL,
    value     text NOT NULL,
    PRIMARY KEY (tenant_id, device_id, key),
    FOREIGN KEY (tenant_id, device_id) REFERENCES device_state ON DELETE CASCADE
);
CREATE INDEX device_tags_selector ON device_tags (tenant_id, key, value, device_id);
