"""schemathesis hooks of scripts/api-fuzz.sh.

A generated Idempotency-Key repeats (schemathesis draws "0" again and
again), and the server rightly answers 422 to a key used before on another
request: an answer that depends on the server's state, not on the
request's form. So in every request meant to be valid, a well-formed key
is made unique before it is sent; requests meant to be invalid go out as
generated (editing them makes schemathesis re-judge them, and a request
left without its Authorization header would then be sent with it).
Replays and key reuse have their own tests (crates/shadowbox-api/tests/api/
idempotency.rs).

A rollout's `waves` must also strictly increase and end in 1.0, which no
schema keyword states: in a request meant to be valid, generated waves
are put in that form (sorted, without repeats, ending in 1.0) before it
is sent. Bad waves have their own test (crates/shadowbox-api/tests/api/
rollouts.rs).
"""

import re
import uuid

import schemathesis

# The form the OpenAPI document states (shadowbox_core::idempotency).
WELL_FORMED = re.compile(r"^[!-~]{1,255}$")

# shadowbox_core::rollout::MAX_WAVES.
MAX_WAVES = 100


def increasing_waves(waves):
    """`waves` sorted, without repeats, ending in 1.0, at most MAX_WAVES."""
    fractions = sorted({f for f in waves if f < 1.0})
    return fractions[-(MAX_WAVES - 1) :] + [1.0]


@schemathesis.hook
def before_call(context, case, kwargs):
    meta = case.meta
    if meta is None or meta.generation.mode.is_negative:
        return
    headers = case.headers or {}
    for name in list(headers):
        value = headers[name]
        if name.lower() == "idempotency-key" and isinstance(value, str) and WELL_FORMED.match(value):
            headers[name] = f"fuzz-{uuid.uuid4()}"
    body = case.body
    if isinstance(body, dict) and isinstance(body.get("waves"), list):
        body["waves"] = increasing_waves(body["waves"])
