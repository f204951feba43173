"""Every transaction kind and the exact shape of its body.

A body is a msgpack map. Each kind lists its fields; each field has a checker that either returns
the value or raises `InvalidBody` / `IntegerOutOfBounds` naming the field. Decoding runs these
checks, so execution only ever sees bodies of the right shape, with every integer in its bounds.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Annotated, Any

import msgspec

from .block import BLOCK_BYTES_MAX, BLOCK_TXS_MAX
from .countries import ISO_3166_ALPHA2
from .errors import IntegerOutOfBounds, InvalidBody, UnknownKind

#: Largest amount of any token in base units, and largest total supply: an unsigned 64-bit integer
#: (msgpack's widest). With 6 decimals that is 18 trillion whole units; see docs/LEDGER.md.
AMOUNT_MAX: int = 2**64 - 1
#: Largest unix time in seconds a claim expiry or rule may name (year 10000).
TIME_MAX_S: int = 253_402_300_799
#: Longest holding period or volume window a rule may set: 100 years.
PERIOD_MAX_S: int = 100 * 366 * 86_400
#: Most decimals a token may have.
DECIMALS_MAX: int = 18
#: Most wallets one `identity.register` may name, and most agents one token may have.
LIST_MAX: int = 64

ADDRESS_BYTES: int = 32

CLAIM_TOPICS: tuple[str, ...] = ("accredited", "country", "investor_type", "kyc")
INVESTOR_TYPES: tuple[str, ...] = ("institutional", "professional", "retail")
#: Chain-wide roles, granted by administrators. `venue_operator`: may create settlement
#: instructions it runs as their venue, and settle its manual ones (docs/SETTLEMENT.md).
ACCOUNT_ROLES: tuple[str, ...] = ("admin", "claim_issuer", "token_issuer", "venue_operator")
#: Per-token roles, granted by the token's owner.
AGENT_ROLES: tuple[str, ...] = ("corporate_actions", "force_transfer", "freeze", "pause", "recovery", "supply")

_SYMBOL = re.compile(r"[A-Z0-9][A-Z0-9.\-]{0,15}")
_IDENTITY_ID = re.compile(r"[A-Za-z0-9._:\-]{1,64}")
_ACTION_ID = re.compile(r"[A-Za-z0-9._:\-]{1,64}")
#: Most payments one `distribution.pay` may push, most options of a ballot, most share classes.
PAY_BATCH_MAX: int = 500
OPTIONS_MAX: int = 16
CLASSES_MAX: int = 16
HEIGHT_MAX: int = 2**62

# --- governance bounds (docs/GOVERNANCE.md) ---

#: Most voting power one validator may hold (the genesis and `validator.add` / `validator.set_power`).
VOTING_POWER_MAX: int = 2**40
#: Most consortium members, and most member keys one member may hold.
MEMBERS_MAX: int = 64
MEMBER_KEYS_MAX: int = 8
#: Most actions one proposal may carry.
ACTIONS_MAX: int = 16
#: Largest numerator and denominator of a threshold fraction.
THRESHOLD_PART_MAX: int = 1000
#: The classes of governance actions; each has its own threshold.
ACTION_CLASSES: tuple[str, ...] = ("members", "params", "roles", "validators")
#: Chain roles a proposal may grant or revoke (`admin` is not one: see docs/GOVERNANCE.md). On a chain
#: with members administrators grant nothing, so every role a chain needs besides `admin` is here.
GOVERNED_ROLES: tuple[str, ...] = ("claim_issuer", "token_issuer", "venue_operator")
#: Chain parameters a proposal may set, with their bounds (inclusive). The timeouts have the bounds
#: of the node config's [consensus] keys. The block limits are held inside what a block may be
#: (`block.BLOCK_TXS_MAX`; `block.BLOCK_BYTES_MAX` less 1 MiB for the header and per-transaction
#: framing), and `block_bytes_max` is at least the largest transaction (`tx.TX_BYTES_MAX`): no
#: vote of the members can make a valid block impossible or a full one invalid.
PARAM_BOUNDS: dict[str, tuple[int, int]] = {
    "block_bytes_max": (16 * 1024, BLOCK_BYTES_MAX - 1024 * 1024),
    "block_txs_max": (1, BLOCK_TXS_MAX),
    "timeout_commit_ms": (0, 600_000),
    "timeout_precommit_ms": (1, 600_000),
    "timeout_prevote_ms": (1, 600_000),
    "timeout_propose_ms": (1, 600_000),
}
_MEMBER_ID = re.compile(r"[A-Za-z0-9._\-]{1,64}")
_VALIDATOR_NAME = re.compile(r"[A-Za-z0-9._\-]{1,64}")
_HOSTNAME = re.compile(r"(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*")
_IPV6 = re.compile(r"[0-9A-Fa-f:.]{2,45}")

Checker = Callable[[str, Any], Any]


# --- field checkers ------------------------------------------------------------------------------


def _integer(lo: int, hi: int) -> Checker:
    def check(name: str, value: Any) -> int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise InvalidBody(f"{name}: expected an integer")
        if not lo <= value <= hi:
            raise IntegerOutOfBounds(f"{name}: {value} outside [{lo}, {hi}]")
        return value

    return check


amount = _integer(1, AMOUNT_MAX)
amount_or_zero = _integer(0, AMOUNT_MAX)
timestamp_s = _integer(0, TIME_MAX_S)
period_s = _integer(1, PERIOD_MAX_S)
decimals = _integer(0, DECIMALS_MAX)
holders_max = _integer(1, 10**9)


def boolean(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise InvalidBody(f"{name}: expected true or false")
    return value


def address(name: str, value: Any) -> bytes:
    if not isinstance(value, bytes) or len(value) != ADDRESS_BYTES:
        raise InvalidBody(f"{name}: expected a {ADDRESS_BYTES}-byte address")
    return value


def _pattern(regex: re.Pattern[str], what: str) -> Checker:
    def check(name: str, value: Any) -> str:
        if not isinstance(value, str) or not regex.fullmatch(value):
            raise InvalidBody(f"{name}: expected {what}")
        return value

    return check


symbol = _pattern(_SYMBOL, "a token symbol (A-Z, 0-9, '.', '-'; 1 to 16 characters)")
identity_id = _pattern(_IDENTITY_ID, "an identity id (A-Z a-z 0-9 . _ : -; 1 to 64 characters)")
action_id = _pattern(_ACTION_ID, "an action id (A-Z a-z 0-9 . _ : -; 1 to 64 characters)")
height = _integer(0, HEIGHT_MAX)
rate_part = _integer(1, AMOUNT_MAX)


def hash32(name: str, value: Any) -> bytes:
    if not isinstance(value, bytes) or len(value) != 32:
        raise InvalidBody(f"{name}: expected a 32-byte hash")
    return value


def text(length_max: int) -> Checker:
    def check(name: str, value: Any) -> str:
        if not isinstance(value, str) or not 1 <= len(value) <= length_max:
            raise InvalidBody(f"{name}: expected text of 1 to {length_max} characters")
        return value

    return check


def one_of(options: tuple[str, ...]) -> Checker:
    def check(name: str, value: Any) -> str:
        if value not in options:
            raise InvalidBody(f"{name}: expected one of {', '.join(options)}")
        return value

    return check


def country(name: str, value: Any) -> str:
    if not isinstance(value, str) or value not in ISO_3166_ALPHA2:
        raise InvalidBody(f"{name}: expected an ISO 3166-1 alpha-2 country code")
    return value


def unique_list(item: Checker, length_max: int = LIST_MAX, *, sorted_: bool = True) -> Checker:
    """A list without repeats; sorted where order means nothing, so a value has one spelling."""

    def check(name: str, value: Any) -> list[Any]:
        if not isinstance(value, list) or len(value) > length_max:
            raise InvalidBody(f"{name}: expected a list of at most {length_max} items")
        items = [item(f"{name}[{i}]", v) for i, v in enumerate(value)]
        if len(set(items)) != len(items):
            raise InvalidBody(f"{name}: repeated item")
        if sorted_ and items != sorted(items):
            raise InvalidBody(f"{name}: items must be in ascending order")
        return items

    return check


def non_empty(inner: Checker) -> Checker:
    """A list that must name something: an empty allow list would read as "nobody" to one reader
    and "no limit" to another, so it is refused (leave the rule out for no limit)."""

    def check(name: str, value: Any) -> Any:
        items = inner(name, value)
        if not items:
            raise InvalidBody(f"{name}: must not be empty (leave the rule out for no limit)")
        return items

    return check


def optional(inner: Checker) -> Checker:
    def check(name: str, value: Any) -> Any:
        return None if value is None else inner(name, value)

    return check


def record(fields: Mapping[str, Checker], *, required: tuple[str, ...] | None = None) -> Checker:
    """A map with known keys; keys outside `fields` are refused, `required` ones must be present."""
    must = tuple(fields) if required is None else required

    def check(name: str, value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise InvalidBody(f"{name}: expected a map")
        unknown = sorted(set(value) - set(fields))
        if unknown:
            raise InvalidBody(f"{name}: unknown field {unknown[0]!r}")
        missing = [k for k in must if k not in value]
        if missing:
            raise InvalidBody(f"{name}: missing field {missing[0]!r}")
        prefix = f"{name}." if name else ""
        return {k: fields[k](prefix + k, v) for k, v in value.items()}

    return check


# --- composite values ---------------------------------------------------------------------------

volume_limit = record({"window_s": period_s, "amount_max": amount})

#: Transfer rules a token may set; every key is optional, an absent key means no such limit.
RULE_FIELDS: dict[str, Checker] = {
    "required_claims": unique_list(one_of(("accredited", "country", "investor_type", "kyc"))),
    "country_allow": non_empty(unique_list(country, 300)),
    "country_block": unique_list(country, 300),
    "investor_types_allow": unique_list(one_of(INVESTOR_TYPES)),
    "holders_max": holders_max,
    "balance_max_per_identity": amount,
    "supply_cap": amount,
    "holding_period_s": period_s,
    "volume_limit": volume_limit,
    "check_sender": boolean,
}
rules = record(RULE_FIELDS, required=())


def _agent(name: str, value: Any) -> tuple[bytes, tuple[str, ...]]:
    if not isinstance(value, list) or len(value) != 2:
        raise InvalidBody(f"{name}: expected [address, [roles]]")
    roles = unique_list(one_of(AGENT_ROLES))(f"{name}.roles", value[1])
    if not roles:
        raise InvalidBody(f"{name}.roles: an agent needs at least one role")
    return (address(f"{name}.address", value[0]), tuple(roles))


def agents(name: str, value: Any) -> list[list[Any]]:
    if not isinstance(value, list) or len(value) > LIST_MAX:
        raise InvalidBody(f"{name}: expected a list of at most {LIST_MAX} agents")
    parsed = [_agent(f"{name}[{i}]", v) for i, v in enumerate(value)]
    keys = [a for a, _ in parsed]
    if keys != sorted(set(keys)):
        raise InvalidBody(f"{name}: agents must be unique and in ascending address order")
    return [[a, list(r)] for a, r in parsed]


def _share_class(name: str, value: Any) -> list[Any]:
    """[token, seniority, preference_per_unit, participating, cap_per_unit | None, convertible]."""
    if not isinstance(value, list) or len(value) != 6:
        raise InvalidBody(f"{name}: expected [token, seniority, preference_per_unit, participating, "
                          "cap_per_unit or null, convertible]")
    return [symbol(f"{name}.token", value[0]), _integer(0, 1000)(f"{name}.seniority", value[1]),
            amount_or_zero(f"{name}.preference_per_unit", value[2]), boolean(f"{name}.participating", value[3]),
            optional(amount)(f"{name}.cap_per_unit", value[4]), boolean(f"{name}.convertible", value[5])]


def share_classes(name: str, value: Any) -> list[list[Any]]:
    if not isinstance(value, list) or not 1 <= len(value) <= CLASSES_MAX:
        raise InvalidBody(f"{name}: expected 1 to {CLASSES_MAX} share classes")
    parsed = [_share_class(f"{name}[{i}]", v) for i, v in enumerate(value)]
    if len({c[0] for c in parsed}) != len(parsed):
        raise InvalidBody(f"{name}: a token appears twice")
    return parsed


def payments(name: str, value: Any) -> list[list[Any]]:
    """[[identity, wallet], ...] for a pushed distribution."""
    if not isinstance(value, list) or not 1 <= len(value) <= PAY_BATCH_MAX:
        raise InvalidBody(f"{name}: expected 1 to {PAY_BATCH_MAX} [identity, wallet] pairs")
    out = []
    for i, item in enumerate(value):
        if not isinstance(item, list) or len(item) != 2:
            raise InvalidBody(f"{name}[{i}]: expected [identity, wallet]")
        out.append([identity_id(f"{name}[{i}].identity", item[0]), address(f"{name}[{i}].wallet", item[1])])
    return out


def options(name: str, value: Any) -> list[str]:
    items = unique_list(text(128), OPTIONS_MAX, sorted_=False)(name, value)
    if len(items) < 2:
        raise InvalidBody(f"{name}: a ballot needs at least two options")
    return items


member_id = _pattern(_MEMBER_ID, "a member id (A-Z a-z 0-9 . _ -; 1 to 64 characters)")
validator_name = _pattern(_VALIDATOR_NAME, "a validator name (A-Z a-z 0-9 . _ -; 1 to 64 characters)")
voting_power = _integer(1, VOTING_POWER_MAX)
proposal_id = _integer(1, HEIGHT_MAX)
expiry_height = _integer(1, HEIGHT_MAX)

# --- settlement instructions (ledger/settlement/instructions.py, docs/SETTLEMENT.md) ----------------

#: Most legs one settlement instruction may carry: enough for a DvP with fees and a few allocations;
#: every leg is checked at each affirmation and at settlement, so the bound bounds that work.
LEGS_MAX: int = 16
#: When an instruction settles: on its last affirmation, at the first settlement at or after a
#: height, or when its venue (or, without one, a party) executes it.
SETTLEMENT_TYPES: tuple[str, ...] = ("at_height", "manual", "on_affirmation")
instruction_id = _integer(1, HEIGHT_MAX)


def legs(name: str, value: Any) -> list[list[Any]]:
    """[[token, from, to, amount], ...]: 1 to LEGS_MAX legs, settled in this order."""
    if not isinstance(value, list) or not 1 <= len(value) <= LEGS_MAX:
        raise InvalidBody(f"{name}: expected 1 to {LEGS_MAX} legs [token, from, to, amount]")
    out = []
    for i, item in enumerate(value):
        if not isinstance(item, list) or len(item) != 4:
            raise InvalidBody(f"{name}[{i}]: expected [token, from, to, amount]")
        leg = [symbol(f"{name}[{i}].token", item[0]), address(f"{name}[{i}].from", item[1]),
               address(f"{name}[{i}].to", item[2]), amount(f"{name}[{i}].amount", item[3])]
        if leg[1] == leg[2]:
            raise InvalidBody(f"{name}[{i}]: from and to are the same wallet")
        out.append(leg)
    return out


_settlement_create = record({
    "legs": legs, "settlement_type": one_of(SETTLEMENT_TYPES), "settle_at_height": optional(expiry_height),
    "expires_at": timestamp_s, "venue": optional(address), "reference": optional(text(128)),
})


def settlement_create(name: str, value: Any) -> dict[str, Any]:
    """A new instruction; `settle_at_height` is given for `at_height` and null otherwise."""
    checked = _settlement_create(name, value)
    if (checked["settlement_type"] == "at_height") != (checked["settle_at_height"] is not None):
        raise InvalidBody("settle_at_height: required for at_height, and null for the other types")
    return checked


def peer_address(name: str, value: Any) -> str:
    """"host:port": a hostname or IPv4 address, or an IPv6 address in brackets; port 1 to 65535."""
    problem = f"{name}: expected \"host:port\" (an IPv6 host in brackets), port 1 to 65535"
    if not isinstance(value, str) or len(value) > 261:
        raise InvalidBody(problem)
    host, _, port = value.rpartition(":")
    if not port.isdigit() or len(port) > 5 or not 1 <= int(port) <= 65_535 or port != str(int(port)):
        raise InvalidBody(problem)
    if host.startswith("["):
        if not host.endswith("]") or not _IPV6.fullmatch(host[1:-1]) or ":" not in host[1:-1]:
            raise InvalidBody(problem)
    elif not _HOSTNAME.fullmatch(host):
        raise InvalidBody(problem)
    return value


def member_keys(name: str, value: Any) -> list[bytes]:
    keys = unique_list(address, MEMBER_KEYS_MAX)(name, value)
    if not keys:
        raise InvalidBody(f"{name}: a member needs at least one key")
    return keys


def _param_set(name: str, value: Any) -> dict[str, Any]:
    checked = record({"action": lambda n, v: v, "name": one_of(tuple(PARAM_BOUNDS)), "value": lambda n, v: v})(
        name, value)
    lo, hi = PARAM_BOUNDS[checked["name"]]
    checked["value"] = _integer(lo, hi)(f"{name}.value", checked["value"])
    return checked


def _action(fields: dict[str, Checker]) -> Checker:
    return record({"action": lambda n, v: v, **fields})


#: Every governance action, its fields, and the class whose threshold decides it.
ACTIONS: dict[str, tuple[str, Checker]] = {
    "validator.add": ("validators", _action({"validator_key": address, "node_key": address, "power": voting_power,
                                             "address": peer_address, "name": validator_name})),
    "validator.remove": ("validators", _action({"validator_key": address})),
    "validator.set_power": ("validators", _action({"validator_key": address, "power": voting_power})),
    "validator.rotate": ("validators", _action({"validator_key": address, "new_validator_key": address,
                                                "new_node_key": address})),
    "member.add": ("members", _action({"id": member_id, "name": text(64), "keys": member_keys})),
    "member.remove": ("members", _action({"id": member_id})),
    "member.set_keys": ("members", _action({"id": member_id, "keys": member_keys})),
    "role.grant": ("roles", _action({"role": one_of(GOVERNED_ROLES), "account": address})),
    "role.revoke": ("roles", _action({"role": one_of(GOVERNED_ROLES), "account": address})),
    "params.set": ("params", _param_set),
}


def action(name: str, value: Any) -> dict[str, Any]:
    """One governance action: a map whose "action" names it, with exactly that action's fields."""
    kind = value.get("action") if isinstance(value, dict) else None
    if not isinstance(kind, str) or kind not in ACTIONS:
        raise InvalidBody(f"{name}.action: expected one of {', '.join(ACTIONS)}")
    return ACTIONS[kind][1](name, value)


def actions(name: str, value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not 1 <= len(value) <= ACTIONS_MAX:
        raise InvalidBody(f"{name}: expected 1 to {ACTIONS_MAX} actions")
    return [action(f"{name}[{i}]", v) for i, v in enumerate(value)]


def action_class(kind: str) -> str:
    """The class (validators, members, roles, params) of a governance action kind."""
    return ACTIONS[kind][0]


def claim_value(topic: str, value: Any) -> str:
    """The value a claim of `topic` carries: a country code, an investor type, or "" for yes/no claims."""
    if topic == "country":
        return country("value", value)
    if topic == "investor_type":
        return one_of(INVESTOR_TYPES)("value", value)
    if value != "":
        raise InvalidBody(f"value: a {topic} claim carries no value (use \"\")")
    return value


# --- the kinds ------------------------------------------------------------------------------------

KINDS: dict[str, Checker] = {
    # chain-wide roles (administrators)
    "role.grant": record({"role": one_of(ACCOUNT_ROLES), "account": address}),
    "role.revoke": record({"role": one_of(ACCOUNT_ROLES), "account": address}),
    # identities and claims (claim issuers)
    "identity.register": record({"identity": identity_id, "wallets": unique_list(address)}),
    "identity.add_wallet": record({"identity": identity_id, "wallet": address}),
    "claim.grant": record(
        {"identity": identity_id, "topic": one_of(CLAIM_TOPICS), "value": lambda n, v: v,
         "expires_at": timestamp_s}
    ),
    "claim.revoke": record({"identity": identity_id, "topic": one_of(CLAIM_TOPICS)}),
    # tokens (token issuers, owners and agents)
    "token.create": record(
        {"symbol": symbol, "name": text(64), "decimals": decimals, "paused": boolean,
         "rules": rules, "agents": agents}
    ),
    "token.set_agent": record({"token": symbol, "agent": address, "roles": unique_list(one_of(AGENT_ROLES))}),
    "token.set_rules": record({"token": symbol, "rules": rules}),
    "token.set_name": record({"token": symbol, "name": text(64)}),
    "token.issue": record({"token": symbol, "to": address, "amount": amount}),
    "token.redeem": record({"token": symbol, "from": address, "amount": amount}),
    "token.transfer": record({"token": symbol, "to": address, "amount": amount}),
    "token.force_transfer": record({"token": symbol, "from": address, "to": address, "amount": amount}),
    "token.freeze": record({"token": symbol, "address": address}),
    "token.unfreeze": record({"token": symbol, "address": address}),
    "token.freeze_partial": record({"token": symbol, "address": address, "amount": amount}),
    "token.unfreeze_partial": record({"token": symbol, "address": address, "amount": amount}),
    "token.pause": record({"token": symbol}),
    "token.unpause": record({"token": symbol}),
    "token.recover": record({"token": symbol, "lost_wallet": address, "new_wallet": address}),
    # documents (token owners)
    "token.set_document": record({"token": symbol, "name": text(64), "uri": text(512), "hash": hash32}),
    "token.remove_document": record({"token": symbol, "name": text(64)}),
    # corporate actions (token owners and corporate-actions agents)
    "distribution.declare": record(
        {"id": action_id, "token": symbol, "payment_token": symbol, "record_height": height,
         "rate_num": amount_or_zero, "rate_den": rate_part, "expires_at": timestamp_s}
    ),
    "distribution.claim": record({"id": action_id}),
    "distribution.pay": record({"id": action_id, "payments": payments}),
    "distribution.reclaim": record({"id": action_id}),
    "liquidation.declare": record(
        {"id": action_id, "payment_token": symbol, "amount": amount, "record_height": height,
         "expires_at": timestamp_s, "classes": share_classes}
    ),
    "ballot.create": record(
        {"id": action_id, "token": symbol, "question": text(1024), "options": options, "record_height": height,
         "opens_at_height": height, "closes_at_height": height}
    ),
    "ballot.vote": record({"id": action_id, "option": _integer(0, OPTIONS_MAX - 1)}),
    "ballot.tally": record({"id": action_id}),
    # consortium governance (members; docs/GOVERNANCE.md)
    "gov.propose": record({"actions": actions, "expires_at_height": expiry_height}),
    "gov.approve": record({"proposal": proposal_id}),
    "gov.reject": record({"proposal": proposal_id}),
    "gov.withdraw": record({"proposal": proposal_id}),
    # settlement instructions (parties and venue operators; docs/SETTLEMENT.md)
    "settlement.create": settlement_create,
    "settlement.affirm": record({"id": instruction_id}),
    "settlement.withdraw_affirmation": record({"id": instruction_id}),
    "settlement.reject": record({"id": instruction_id}),
    "settlement.execute": record({"id": instruction_id}),
    "settlement.expire": record({"id": instruction_id}),
    # primary offerings (the token's owner or supply agents, and investors; docs/SETTLEMENT.md)
    "offering.open": record(
        {"id": action_id, "token": symbol, "cash_token": symbol, "price": amount, "raise_min": amount_or_zero,
         "raise_max": amount, "investor_min": amount, "investor_max": amount, "opens_at": timestamp_s,
         "closes_at": timestamp_s, "cash_wallet": address}
    ),
    "offering.subscribe": record({"id": action_id, "amount": amount}),
    "offering.withdraw": record({"id": action_id}),
    "offering.close": record({"id": action_id}),
    "offering.cancel": record({"id": action_id}),
}


def check_body(kind: str, body: Any) -> dict[str, Any]:
    """The body, checked against its kind's schema; raises `UnknownKind` or `InvalidBody`."""
    checker = KINDS.get(kind) if isinstance(kind, str) else None
    if checker is None:
        raise UnknownKind(f"unknown transaction kind {kind!r}")
    checked = checker("", body)
    if kind == "claim.grant":
        checked["value"] = claim_value(checked["topic"], checked["value"])
    return checked


# --- the common kinds, typed: msgspec's fast path (ledger/tx.py) -----------------------------------
#
# The kinds a busy chain carries most, mirrored as msgspec structs with the same bounds as the
# checkers above, so `decode_transaction` can decode and check them in one C call. This is only a
# fast path: a body it does not accept (any error, any kind not listed here) goes to `check_body`,
# which decides and names the error, so the structs may be narrower than the schema but never wider.
# tests/unit/ledger/test_codec_typed.py holds each kind to `check_body` on generated and hostile input.


def _anchored(regex: re.Pattern[str]) -> str:
    """`regex` for msgspec, which searches: anchored at both ends (`\\Z`, not `$`, which would
    also match before a final newline), so it means `fullmatch`, as the checkers use it."""
    return rf"^(?:{regex.pattern})\Z"


#: A field's type by the name of its checker above.
_TYPED_FIELDS: dict[str, Any] = {
    "symbol": Annotated[str, msgspec.Meta(pattern=_anchored(_SYMBOL))],
    "address": Annotated[bytes, msgspec.Meta(min_length=ADDRESS_BYTES, max_length=ADDRESS_BYTES)],
    # No upper bound: msgpack's widest unsigned integer is AMOUNT_MAX (msgspec's bounds stop at int64).
    "amount": Annotated[int, msgspec.Meta(ge=1)],
    "action_id": Annotated[str, msgspec.Meta(pattern=_anchored(_ACTION_ID))],
    "instruction_id": Annotated[int, msgspec.Meta(ge=1, le=HEIGHT_MAX)],
    "option": Annotated[int, msgspec.Meta(ge=0, le=OPTIONS_MAX - 1)],
}

#: The common kinds: each field's wire name and checker name (the kind's record in `KINDS` above).
TYPED_KINDS: dict[str, dict[str, str]] = {
    "token.transfer": {"token": "symbol", "to": "address", "amount": "amount"},
    "token.issue": {"token": "symbol", "to": "address", "amount": "amount"},
    "token.redeem": {"token": "symbol", "from": "address", "amount": "amount"},
    "token.force_transfer": {"token": "symbol", "from": "address", "to": "address", "amount": "amount"},
    "token.freeze": {"token": "symbol", "address": "address"},
    "token.unfreeze": {"token": "symbol", "address": "address"},
    "token.freeze_partial": {"token": "symbol", "address": "address", "amount": "amount"},
    "token.unfreeze_partial": {"token": "symbol", "address": "address", "amount": "amount"},
    "settlement.affirm": {"id": "instruction_id"},
    "settlement.execute": {"id": "instruction_id"},
    "offering.subscribe": {"id": "action_id", "amount": "amount"},
    "distribution.claim": {"id": "action_id"},
    "ballot.vote": {"id": "action_id", "option": "option"},
}


def _typed_body(kind: str, fields: dict[str, str]) -> tuple[msgspec.msgpack.Decoder[Any], tuple[str, ...]]:
    names = tuple(sorted(fields))  # declared in canonical order, so a struct encodes as its map does
    struct = msgspec.defstruct(
        "Body_" + kind.replace(".", "_"),
        [(f"{name}_", _TYPED_FIELDS[fields[name]]) for name in names],  # `from` is a keyword
        rename={f"{name}_": name for name in names},
        forbid_unknown_fields=True,
    )
    return msgspec.msgpack.Decoder(struct), names


_TYPED_BODIES = {kind: _typed_body(kind, fields) for kind, fields in TYPED_KINDS.items()}


def decode_typed_body(kind: str, raw: Any) -> tuple[Any, dict[str, Any]] | None:
    """A common kind's body decoded and checked from its msgpack bytes: (struct, body as
    `check_body` returns it), or None when the fast path does not accept it. The struct
    re-encodes to the canonical bytes; the caller compares them with what it was given."""
    typed = _TYPED_BODIES.get(kind)
    if typed is None:
        return None
    decoder, names = typed
    try:
        struct = decoder.decode(raw)
    except Exception:  # anything msgspec refuses is judged, and named, by `check_body`
        return None
    return struct, dict(zip(names, msgspec.structs.astuple(struct), strict=True))
