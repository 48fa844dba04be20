-- Rollouts: one merge patch for a fixed set of devices, written in waves
-- by the wave machine (shadowbox-rollout), whose whole state is here.
CREATE TABLE rollouts (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id       text NOT NULL REFERENCES tenants ON DELETE CASCADE,
    status          text NOT NULL DEFAULT 'running'
                    CHECK (status IN ('running', 'paused', 'completed', 'aborted',
                                      'cancelled', 'rolled_back')),
    -- As given: {"device_ids": [...]}, {"tags": {...}} or {"all": true}.
    selector        jsonb NOT NULL,
    patch           jsonb NOT NULL,
    waves           double precision[] NOT NULL,
    min_converged   double precision NOT NULL,
    wave_timeout_ms bigint,
    max_rejected    double precision,
    -- How many devices the selector matched at creation.
    selected        bigint NOT NULL,
    -- The wave being written or waited for (0-based), and the last
    -- rollout_devices.seq written: the wave machine's cursor, advanced in
    -- the transaction that writes the chunk.
    current_wave    integer NOT NULL DEFAULT 0,
    written_through bigint NOT NULL DEFAULT 0,
    -- The current wave's timeout clock: time run before the last pause,
    -- and since when it runs again (NULL while it is stopped).
    wave_clock_ms          bigint NOT NULL DEFAULT 0,
    wave_clock_started_at  timestamptz DEFAULT now(),
    -- A rollback's cursor: NULL until /rollback, then the last seq
    -- restored; rollback_finished_at once every device was looked at.
    rollback_through     bigint,
    rollback_finished_at timestamptz,
    abort_reason    text,
    -- When the wave machine should look at the rollout next, and when it
    -- last counted its gates (between chunks of a long wave it recounts
    -- rejections at most once per poll interval).
    next_tick_at    timestamptz NOT NULL DEFAULT now(),
    checked_at      timestamptz NOT NULL DEFAULT now(),
    created_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz
);
-- A tenant's rollouts, newest first.
CREATE INDEX rollouts_tenant ON rollouts (tenant_id, id DESC);
-- The wave machine's work: rollouts that run, are paused (rejections can
-- still abort them) or have a rollback to finish.
CREATE INDEX rollouts_due ON rollouts (next_tick_at)
    WHERE status IN ('running', 'paused')
       OR (status = 'rolled_back' AND rollback_finished_at IS NULL);

-- The waves, cut at creation: devices first_seq..=last_seq of the
-- rollout's set (empty when last_seq < first_seq). The counters are
-- written with each chunk; delivered, converged and rejected are read
-- from the devices and the outbox when asked.
CREATE TABLE rollout_waves (
    rollout_id    bigint NOT NULL REFERENCES rollouts ON DELETE CASCADE,
    wave          integer NOT NULL,
    fraction      double precision NOT NULL,
    first_seq     bigint NOT NULL,
    last_seq      bigint NOT NULL,
    written       bigint NOT NULL DEFAULT 0,
    skipped_unchanged      bigint NOT NULL DEFAULT 0,
    skipped_decommissioned bigint NOT NULL DEFAULT 0,
    skipped_limits         bigint NOT NULL DEFAULT 0,
    started_at    timestamptz,
    finished_at   timestamptz,
    PRIMARY KEY (rollout_id, wave)
);

-- The set fixed at creation, in wave order (seq 1..selected, a
-- pseudo-random order reproducible from the rollout id), and what
-- happened to each device.
CREATE TABLE rollout_devices (
    rollout_id bigint NOT NULL REFERENCES rollouts ON DELETE CASCADE,
    seq        bigint NOT NULL,
    device_id  text NOT NULL,
    -- NULL until its chunk is written.
    outcome    text CHECK (outcome IN ('written', 'unchanged', 'decommissioned', 'limits')),
    -- The version written for it, and the document it replaced (what a
    -- rollback restores).
    version    bigint,
    previous   jsonb,
    -- NULL until a rollback looked at it: 'restored', or 'changed' when
    -- the device's desired version had moved past the rollout's since.
    rollback   text CHECK (rollback IN ('restored', 'changed')),
    PRIMARY KEY (rollout_id, seq)
);
