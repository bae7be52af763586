"""Drafts in Redis: one hash per user (field = draft id, value = the draft as JSON).

The hash has a sliding TTL: every read or write of a user's drafts restarts it. Writes that must
check before they change (the count limit, the version) run as Lua scripts, which Redis executes
atomically: no other client sees or makes a change in between, and nothing is half-written.
"""

import json
from typing import Any, Literal

from config.redis_wiring import app_client, replicated_script
from sessions_demo import keys
from sessions_demo.conf import sessions_setting

# KEYS[1] the user's drafts; KEYS[2], when given, the Idempotency-Key record to complete with them,
# only while it still holds this request's claim (ARGV[7]). ARGV: draft id, draft JSON, max drafts,
# TTL, idempotency record, its TTL, the claim. Returns 1 stored, 0 too many drafts, -1 claim lost.
CREATE = """
if KEYS[2] and redis.call('GET', KEYS[2]) ~= ARGV[7] then return -1 end
if redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[4])
if KEYS[2] then redis.call('SET', KEYS[2], ARGV[5], 'EX', ARGV[6]) end
return 1
"""

# Replace (ARGV[3] a draft JSON) or delete (ARGV[3] empty) the draft ARGV[1], only while it is
# still at version ARGV[2]. Returns 1 done, 0 changed since read, -1 gone.
COMPARE_AND_SET = """
local current = redis.call('HGET', KEYS[1], ARGV[1])
if not current then return -1 end
if cjson.decode(current)['version'] ~= tonumber(ARGV[2]) then return 0 end
if ARGV[3] == '' then
  redis.call('HDEL', KEYS[1], ARGV[1])
else
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
end
redis.call('EXPIRE', KEYS[1], ARGV[4])
return 1
"""

Outcome = Literal["done", "changed", "missing"]
OUTCOMES: dict[int, Outcome] = {1: "done", 0: "changed", -1: "missing"}


def _ttl() -> int:
    return sessions_setting("DRAFT_TTL")


def get(user_id: str, draft_id: str) -> dict[str, Any] | None:
    """Return one draft of the user, or None; restart the TTL of the user's drafts."""
    pipe = app_client().pipeline(transaction=False)
    pipe.hget(keys.drafts(user_id), draft_id)
    pipe.expire(keys.drafts(user_id), _ttl())
    raw, _ = pipe.execute()
    return json.loads(raw) if raw is not None else None


def exists(user_id: str, draft_id: str) -> bool:
    """Return whether the user has this draft (the TTL is left as it is)."""
    return bool(app_client().hexists(keys.drafts(user_id), draft_id))


def get_all(user_id: str) -> list[dict[str, Any]]:
    """Return every draft of the user (in no order); restart their TTL."""
    pipe = app_client().pipeline(transaction=False)
    pipe.hgetall(keys.drafts(user_id))
    pipe.expire(keys.drafts(user_id), _ttl())
    raw_drafts, _ = pipe.execute()
    return [json.loads(raw) for raw in raw_drafts.values()]


CreateOutcome = Literal["stored", "full", "claim_lost"]
CREATE_OUTCOMES: dict[int, CreateOutcome] = {1: "stored", 0: "full", -1: "claim_lost"}


def create(
    user_id: str,
    draft: dict[str, Any],
    *,
    idempotency_key: str = "",
    idempotency_claim: str = "",
    idempotency_record: str = "",
) -> CreateOutcome:
    """Store a new draft unless the user has MAX_DRAFTS already.

    With an idempotency key, its finished record replaces `idempotency_claim` in the same atomic
    step, and nothing is stored if the key no longer holds that claim.
    """
    script_keys = [keys.drafts(user_id), *([idempotency_key] if idempotency_key else [])]
    args: list[str | int] = [draft["id"], json.dumps(draft), sessions_setting("MAX_DRAFTS"), _ttl()]
    args += [idempotency_record, sessions_setting("IDEMPOTENCY_TTL"), idempotency_claim]
    return CREATE_OUTCOMES[replicated_script(CREATE, script_keys, args)]


def _compare_and_set(user_id: str, draft_id: str, expected_version: int, new_json: str) -> Outcome:
    args: list[str | int] = [draft_id, expected_version, new_json, _ttl()]
    return OUTCOMES[replicated_script(COMPARE_AND_SET, [keys.drafts(user_id)], args)]


def replace(user_id: str, draft: dict[str, Any], *, expected_version: int) -> Outcome:
    """Overwrite a draft, only if it is still at `expected_version`."""
    return _compare_and_set(user_id, draft["id"], expected_version, json.dumps(draft))


def delete(user_id: str, draft_id: str, *, expected_version: int) -> Outcome:
    """Delete a draft, only if it is still at `expected_version`."""
    return _compare_and_set(user_id, draft_id, expected_version, "")


def count(user_id: str) -> int:
    """Return how many drafts the user has."""
    return app_client().hlen(keys.drafts(user_id))
