"""u64 ledger quantities travel as decimal strings, both ways (docs/RPC.md, "Numbers").

Out: `jsonable`, the one conversion of the RPC boundary, turns the integers of `AMOUNT_FIELDS`
into strings and leaves heights, times, counts and indexes as numbers. In: the `amount` schema
(`format: u64`) takes only canonical decimal strings. The list of fields is held to the ledger's
transaction kinds: every body field whose bound is above 2^53 is listed, unless it is a height or
an id, which count up by one and never get near it.
"""

from __future__ import annotations

import inspect
import json
from typing import Any

import pytest

from ledger import kinds
from ledger.tx import NONCE_MAX
from node.rpc import MethodRegistry, Param, RpcMethod, openrpc_document
from node.rpc.api import AMOUNT, AMOUNT_FIELDS, AMOUNT_POSITIONS, API_VERSION, jsonable
from node.rpc.methods import U64_MAX, bind_params, check_schema, parse_u64
from node.rpc.protocol import InvalidParams

BIG = 2**60 + 1
JS_SAFE_MAX = 2**53 - 1
AMOUNT_MAX = kinds.AMOUNT_MAX

# --- out: results, events, bodies -------------------------------------------------------------------


def test_amount_fields_become_strings_and_the_rest_stays_numbers() -> None:
    balance = {"token": "ACME", "address": b"\x01" * 32, "height": 12, "balance": BIG, "frozen": 0,
               "free": BIG, "address_frozen": False}
    assert jsonable(balance) == {"token": "ACME", "address": "01" * 32, "height": 12, "balance": str(BIG),
                                 "frozen": "0", "free": str(BIG), "address_frozen": False}
    token = {"decimals": 6, "holder_count": 3, "created_at_s": 1_700_000_000, "total_supply": AMOUNT_MAX,
             "rules": {"holders_max": 2000, "supply_cap": AMOUNT_MAX, "balance_max_per_identity": 5,
                       "holding_period_s": 86_400, "volume_limit": {"window_s": 60, "amount_max": 9}}}
    assert jsonable(token) == {"decimals": 6, "holder_count": 3, "created_at_s": 1_700_000_000,
                               "total_supply": str(AMOUNT_MAX),
                               "rules": {"holders_max": 2000, "supply_cap": str(AMOUNT_MAX),
                                         "balance_max_per_identity": "5", "holding_period_s": 86_400,
                                         "volume_limit": {"window_s": 60, "amount_max": "9"}}}



def test_lists_under_amount_fields_and_positional_records() -> None:
    ballot = {"tallies": [BIG, 0], "voters": 2, "winner": 0, "options": ["yes", "no"], "record_height": 4}
    assert jsonable(ballot) == {"tallies": [str(BIG), "0"], "voters": 2, "winner": 0, "options": ["yes", "no"],
                                "record_height": 4}
    liquidation_event = {"amount": 10, "classes": [{"token": "SERA", "units": 7, "payout": 3, "converted": True}],
                         "entitlements": [["alice", 6], ["bob", 4]]}
    assert jsonable(liquidation_event) == {
        "amount": "10", "classes": [{"token": "SERA", "units": "7", "payout": "3", "converted": True}],
        "entitlements": [["alice", "6"], ["bob", "4"]]}
    # the body of liquidation.declare: [token, seniority, preference_per_unit, participating, cap, convertible]
    body = {"classes": [["SERA", 1, 10, False, None, True], ["ACME", 0, 0, True, BIG, False]], "record_height": 3}
    assert jsonable(body) == {"classes": [["SERA", 1, "10", False, None, True], ["ACME", 0, "0", True, str(BIG), False]],
                              "record_height": 3}
    legs = {"legs": [["ACME", b"\x01" * 32, b"\x02" * 32, BIG]]}
    assert jsonable(legs) == {"legs": [["ACME", "01" * 32, "02" * 32, str(BIG)]]}


def test_nonces_are_strings_and_conversion_is_idempotent() -> None:
    receipt = {"hash": b"\xab" * 32, "height": 9, "index": 0, "nonce": NONCE_MAX, "code": "0x51",
               "events": [{"kind": "token.issued", "height": 9, "tx_index": 0, "event_index": 0,
                           "data": {"to": b"\x01" * 32, "amount": BIG}}]}
    once = jsonable(receipt)
    assert once["nonce"] == str(NONCE_MAX) and once["height"] == 9 and once["index"] == 0
    assert once["events"][0]["data"]["amount"] == str(BIG) and once["events"][0]["tx_index"] == 0
    assert jsonable(once) == once
    assert jsonable({"next_nonce": 0, "committed_nonce": 0}) == {"next_nonce": "0", "committed_nonce": "0"}
    assert jsonable({"amount": True}) == {"amount": True}  # a bool is never a number here
    assert jsonable({"paid": None}) == {"paid": None}


def _integer_fields(checker: Any, name: str = "") -> list[tuple[str, int, int]]:
    """(field path, low, high) of every integer field a kind's checker checks, found through the
    closures of `kinds.record`, `kinds._integer` and the list wrappers."""
    if not getattr(checker, "__closure__", None):
        return []
    cells = inspect.getclosurevars(checker).nonlocals
    if isinstance(cells.get("fields"), dict):
        out = []
        for field, inner in cells["fields"].items():
            out += _integer_fields(inner, f"{name}.{field}" if name else field)
        return out
    if "lo" in cells and "hi" in cells:
        return [(name, cells["lo"], cells["hi"])]
    return [item for key in ("inner", "item") if callable(cells.get(key))
            for item in _integer_fields(cells[key], name)]


#: Body fields bounded above 2^53 that are not amounts: heights and sequential ids, which grow by
#: one per block (or proposal, or instruction) and would need millennia to pass 2^53.
SEQUENTIAL = {"record_height", "opens_at_height", "closes_at_height", "expires_at_height", "proposal", "id",
              "settle_at_height"}


def test_every_u64_body_field_of_every_kind_is_an_amount_field() -> None:
    seen = set()
    for kind, checker in kinds.KINDS.items():
        if checker is getattr(kinds, "settlement_create", None):  # a record plus a cross-field check
            checker = kinds._settlement_create
        for path, _, high in _integer_fields(checker):
            field = path.rsplit(".", 1)[-1]
            seen.add(field)
            if high > JS_SAFE_MAX and field not in SEQUENTIAL:
                assert field in AMOUNT_FIELDS, f"{kind}: {path} (up to {high}) must travel as a string"
            if high <= JS_SAFE_MAX:
                assert field not in AMOUNT_FIELDS, f"{kind}: {path} is bounded by {high}: keep it a number"
    assert {"amount", "supply_cap", "amount_max", "rate_num", "rate_den"} <= seen  # the walk found them


def test_positional_amounts_match_the_ledgers_list_checkers() -> None:
    """`classes` and `legs` are plain functions the walk above cannot open: check by example."""
    assert AMOUNT_POSITIONS["classes"] == {2, 4}
    kinds.share_classes("classes", [["SERA", 0, AMOUNT_MAX, False, AMOUNT_MAX, True]])  # 2 and 4 take a u64
    for index in (2, 4):
        share_class: list[Any] = ["SERA", 0, 10, False, 10, True]
        share_class[index] = AMOUNT_MAX + 1
        with pytest.raises(kinds.IntegerOutOfBounds):
            kinds.share_classes("classes", [share_class])
    with pytest.raises(kinds.IntegerOutOfBounds):  # the seniority (index 1) is small: a number
        kinds.share_classes("classes", [["SERA", 1001, 10, False, None, True]])
    if hasattr(kinds, "legs"):  # settlement instructions: [token, from, to, amount]
        assert AMOUNT_POSITIONS["legs"] == {3}
        kinds.legs("legs", [["ACME", b"\x01" * 32, b"\x02" * 32, AMOUNT_MAX]])
        with pytest.raises(kinds.IntegerOutOfBounds):
            kinds.legs("legs", [["ACME", b"\x01" * 32, b"\x02" * 32, AMOUNT_MAX + 1]])


# --- in: params ----------------------------------------------------------------------------------------


async def _check(token: str, amount: str) -> dict[str, Any]:
    return {"amount": amount}


CHECK = RpcMethod("check", "A method with an amount.", (Param("token", {"type": "string"}), Param("amount", AMOUNT)),
                  {"type": "object"}, _check)


def refusal(amount: Any) -> InvalidParams:
    with pytest.raises(InvalidParams) as error:
        bind_params(CHECK, {"token": "ACME", "amount": amount})
    assert error.value.param == "amount"
    return error.value


@pytest.mark.parametrize("amount", [1000, 0, BIG, 1.0, True, None])
def test_a_json_number_where_an_amount_is_due_is_refused_naming_the_field(amount: Any) -> None:
    error = refusal(amount)
    assert error.message.startswith('amount: amount must be a decimal string, e.g. "1000"')


@pytest.mark.parametrize("text", ["+5", "-5", " 5", "5 ", "05", "00", "5.0", "1e3", "0x10", "1_000", "", "five",
                                  "\u0661\u0662", "5\n", "１２"])
def test_anything_but_canonical_decimal_digits_is_refused(text: str) -> None:
    assert "must be a decimal string of the digits 0-9" in refusal(text).message


def test_the_u64_range_is_enforced_exactly() -> None:
    assert bind_params(CHECK, {"token": "A", "amount": str(U64_MAX)})["amount"] == "18446744073709551615"
    assert bind_params(CHECK, {"token": "A", "amount": "1"})["amount"] == "1"
    assert refusal(str(U64_MAX + 1)).message == f'amount: amount must be at most {U64_MAX}, got "{U64_MAX + 1}"'
    assert "amount must be at most" in refusal("9" * 20).message
    assert "amount must be a decimal string" in refusal("1" * 21).message
    assert refusal("0").message == 'amount: amount must be >= 1, got "0"'
    assert parse_u64("0") == 0 and parse_u64(str(U64_MAX)) == U64_MAX and parse_u64(str(U64_MAX + 1)) is None


def test_u64_schemas_are_checked_at_registration() -> None:
    with pytest.raises(ValueError, match="unsupported format"):
        check_schema({"type": "string", "format": "date-time"}, "x")
    with pytest.raises(ValueError, match="of type string"):
        check_schema({"type": "integer", "format": "u64"}, "x")


def test_discover_documents_the_amount_schema_and_fields() -> None:
    from node.rpc.api import build_registry

    registry = build_registry(_NoNode())  # type: ignore[arg-type]
    document = openrpc_document(registry)
    assert document["info"]["version"] == API_VERSION == "0.2.0"
    assert document["components"]["schemas"]["amount"] == AMOUNT
    assert set(document["x-amount-fields"]["fields"]) == AMOUNT_FIELDS
    compliance = next(m for m in document["methods"] if m["name"] == "compliance_check")
    amount = next(p for p in compliance["params"] if p["name"] == "amount")
    assert amount["schema"]["format"] == "u64" and amount["schema"]["type"] == "string"
    json.dumps(document)
    assert isinstance(registry, MethodRegistry)


class _NoNode:
    """Enough of a node to build the registry; no method is called."""

    ledger = mempool = evidence = None
