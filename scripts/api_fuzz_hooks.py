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
"""

import re
import uuid

import schemathesis

# The form the OpenAPI document states (shadowbox_core::idempotency).
WELL_FORMED = re.compile(r"^[!-~]{1,255}$")


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
