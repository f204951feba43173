"""Property tests of settlement instructions: random instructions, affirmations, withdrawals,
rejections, executions and expiries, interleaved with holders' transfers, rule and claim changes and
agents' orders, committed in blocks and checked after every block against a model that knows only
the operations and their receipts.

After every block:
- conservation: per token, the wallets' balances sum to the supply, and the supply changed only by
  issues and redemptions;
- all legs or none: the balances equal the model's, which moves an instruction's legs all together
  when (and only when) its receipt says it settled; the transfer events of an instruction are
  exactly its legs, in order, in the transaction that settled it;
- a settled instruction never settles again (no second `settlement.settled`, no later transfer);
- the reservations in the store are exactly the legs of the affirmed senders of pending
  instructions (every release gave back what its affirmation took), and, as long as no agent has
  taken or frozen units, they never exceed a wallet's free balance;
- the dry run (`settlement_check`, at the block's time) gave exactly the outcome the block's first
  operation got, when that operation was a settlement attempt;
- a second store fed the same blocks has the same state root; at the end the two are
  byte-identical and a rebuild changes nothing.

More examples: SECLEDGER_PROPERTY_EXAMPLES=500 .venv/bin/python -m pytest tests/property -q
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from ledger import layout, queries
from ledger.block import Block
from ledger.state import decode_value
from ledger.store import DB_NAMES
from ledger.testing import LedgerHarness, address_of

EXAMPLES = int(os.environ.get("SECLEDGER_PROPERTY_EXAMPLES", "40"))

TOKENS = ("TOK", "CSH")
#: identity -> (wallets, country, accredited)
INVESTORS: dict[str, tuple[tuple[str, ...], str, bool]] = {
    "i0": (("i0a", "i0b"), "US", True),
    "i1": (("i1a",), "DE", False),
    "i2": (("i2a", "i2b"), "FR", True),
    "i3": (("i3a",), "US", False),
}
WALLETS = ("i0a", "i0b", "i1a", "i2a", "i2b", "i3a", "stranger")
FUNDED = ("i0a", "i0b", "i1a", "i2a", "i3a")
RULE_SETS: tuple[dict[str, Any], ...] = (
    {},
    {"required_claims": ["kyc"]},
    {"required_claims": ["accredited", "kyc"]},
    {"country_block": ["DE"], "check_sender": True},
    {"holders_max": 3},
    {"balance_max_per_identity": 150},
    {"volume_limit": {"window_s": 3_600, "amount_max": 40}},
)
#: Agents' operations that take or freeze units (a legal order outranks a reservation).
AGENT_TAKING = ("force", "redeem", "freeze_partial")

wallets = st.sampled_from(WALLETS[:-1] * 3 + ("stranger",))
tokens = st.sampled_from(TOKENS)
amounts = st.integers(1, 60)
#: legs mostly between funded, registered wallets, now and then from an empty or unregistered one
leg = st.tuples(tokens, st.sampled_from(("i0a", "i1a") * 4 + FUNDED + ("i2b", "stranger")), wallets, amounts)
#: Who signs a settlement operation: mostly a sender or receiver of the instruction (resolved when
#: the block is signed, from the instructions created so far), sometimes anyone.
who = st.sampled_from(("sender",) * 8 + ("receiver",) * 2 + WALLETS)
#: Which instruction: the n-th most recent one created so far, or (None) an id that does not exist.
which = st.sampled_from((0, 0, 0, 1, 1, 2, None))
create = st.tuples(st.just("create"), who, st.lists(leg, min_size=1, max_size=3),
                   st.sampled_from(["on_affirmation", "on_affirmation", "manual", "at_height"]),
                   st.integers(1, 4), st.sampled_from([30, 3_600, 86_400, 86_400, 86_400, 86_400]))
settle_op = st.tuples(st.sampled_from(("affirm",) * 8 + ("execute",) * 3 + ("withdraw",) * 2 + ("reject", "expire")),
                      who, which)
others = st.one_of(
    st.tuples(st.just("transfer"), tokens, wallets, wallets, amounts),
    st.tuples(st.just("rules"), tokens, st.sampled_from(RULE_SETS)),
    st.tuples(st.sampled_from(["freeze", "unfreeze"]), tokens, wallets),
    st.tuples(st.sampled_from(["pause", "unpause"]), tokens),
    st.tuples(st.just("revoke"), st.sampled_from(sorted(INVESTORS)), st.sampled_from(["accredited", "kyc"])),
    st.tuples(st.just("issue"), tokens, wallets, amounts),
    st.tuples(st.sampled_from(AGENT_TAKING), tokens, wallets, wallets, amounts),
)
#: an agent's or the owner's act aimed at an instruction's leg (resolved like `which`), so that
#: settlements fail after their affirmations, and recover
hit = st.tuples(st.just("hit"), which, st.sampled_from(["freeze_to", "freeze_from", "pause", "force_from",
                                                        "unfreeze_to", "unfreeze_from", "unpause", "volume"]))
#: an operation: a settlement one six times in ten (one_of would weigh every branch alike)
operation = st.sampled_from(("create",) * 2 + ("settle",) * 4 + ("hit",) * 2 + ("other",) * 2).flatmap(
    lambda pick: {"create": create, "settle": settle_op, "hit": hit, "other": others}[pick])
#: a plan: the instructions created in the first block, then blocks of (seconds since the last one,
#: operations); settlement operations name these instructions (and later ones) by recency
plans = st.tuples(st.lists(create, min_size=1, max_size=4),
                  st.lists(st.tuples(st.sampled_from([1, 1, 1, 5, 600, 3_600]), st.lists(operation, max_size=8)),
                           min_size=1, max_size=12))


@dataclass
class Model:
    """What the store must hold, moved only by receipts that succeeded."""

    balances: dict[tuple[str, str], int] = field(default_factory=dict)
    supply: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TOKENS, 0))
    #: id -> {"legs": [(token, from, to, amount)], "affirmed": set of wallet names, "status": str}
    instructions: dict[int, dict[str, Any]] = field(default_factory=dict)
    settled: set[int] = field(default_factory=set)
    agents_took: bool = False

    def move(self, token: str, sender: str, receiver: str, amount: int) -> None:
        self.balances[(token, sender)] = self.balances.get((token, sender), 0) - amount
        self.balances[(token, receiver)] = self.balances.get((token, receiver), 0) + amount

    def reserved(self) -> dict[tuple[str, str], int]:
        out: dict[tuple[str, str], int] = {}
        for record in self.instructions.values():
            if record["status"] != "pending":
                continue
            for token, sender, _, amount in record["legs"]:
                if sender in record["affirmed"]:
                    out[(token, sender)] = out.get((token, sender), 0) + amount
        return out


def step(model: Model, op: tuple, receipt: Any) -> None:
    """Move the model by one receipt, and check what the receipt's events promise."""
    kind, ok = op[0], receipt.outcome.ok
    events = receipt.events
    moved = [e for e in events if e.kind == "token.transferred" and "instruction" in e.data]
    settled = [e.data["id"] for e in events if e.kind == "settlement.settled"]
    failed = [e.data for e in events if e.kind == "settlement.failed"]
    assert len(settled) + len(failed) <= 1, events
    # all legs or none, in order, in the transaction that settled it
    if settled:
        record = model.instructions[settled[0]]
        assert settled[0] not in model.settled, "an instruction settled twice"
        assert [(e.token, e.data["from"], e.data["to"], e.data["amount"], e.data["instruction"], e.data["leg"])
                for e in moved] == [(t, address_of(f), address_of(r), n, settled[0], i)
                                    for i, (t, f, r, n) in enumerate(record["legs"])]
        model.settled.add(settled[0])
    else:
        assert moved == [], "units of an instruction moved without its settlement"
    if not ok:
        return
    if kind == "create":
        (created,) = [e.data["id"] for e in events if e.kind == "settlement.created"]
        assert created == len(model.instructions) + 1
        model.instructions[created] = {"legs": [tuple(leg) for leg in op[2]], "affirmed": set(), "status": "pending"}
    elif kind in ("affirm", "withdraw", "reject", "expire", "execute"):
        record = model.instructions[op[2]]
        if kind == "affirm":
            record["affirmed"].add(op[1])
        elif kind == "withdraw":
            record["affirmed"].discard(op[1])
        elif kind in ("reject", "expire"):
            record["status"] = "rejected" if kind == "reject" else "expired"
        if settled:
            record["status"] = "settled"
            for token, sender, receiver, amount in record["legs"]:
                model.move(token, sender, receiver, amount)
        elif failed and failed[0]["final"]:
            record["status"] = "failed"
    elif kind == "transfer":
        model.move(op[1], op[2], op[3], op[4])
    elif kind == "issue":
        model.balances[(op[1], op[2])] = model.balances.get((op[1], op[2]), 0) + op[3]
        model.supply[op[1]] += op[3]
    elif kind == "force":
        model.move(op[1], op[2], op[3], op[4])
        model.agents_took = True
    elif kind == "redeem":
        model.balances[(op[1], op[2])] -= op[4]
        model.supply[op[1]] -= op[4]
        model.agents_took = True
    elif kind == "freeze_partial":
        model.agents_took = True


def sign(h: LedgerHarness, op: tuple, now_s: int) -> bytes:
    kind, a = op[0], address_of
    agent = h.signer("agent")
    if kind == "create":
        _, creator, legs, settlement_type, height_offset, expiry_s = op
        return h.signer(creator).create_instruction(
            [(t, a(f), a(r), n) for t, f, r, n in legs], settlement_type=settlement_type,
            settle_at_height=h.ledger.tip.height + 1 + height_offset if settlement_type == "at_height" else None,
            expires_at=now_s + expiry_s)
    if kind in ("affirm", "withdraw", "reject", "execute", "expire"):
        method = {"affirm": "affirm_instruction", "withdraw": "withdraw_affirmation", "reject": "reject_instruction",
                  "execute": "execute_instruction", "expire": "expire_instruction"}[kind]
        return getattr(h.signer(op[1]), method)(op[2])
    if kind == "transfer":
        return h.signer(op[2]).transfer(op[1], a(op[3]), op[4])
    if kind == "rules":
        return h.signer("issuer").set_rules(op[1], op[2])
    if kind in ("freeze", "unfreeze"):
        return getattr(agent, kind)(op[1], a(op[2]))
    if kind in ("pause", "unpause"):
        return getattr(agent, kind)(op[1])
    if kind == "revoke":
        return h.signer("kyc").revoke_claim(op[1], op[2])
    if kind == "issue":
        return agent.issue(op[1], a(op[2]), op[3])
    if kind == "force":
        return agent.force_transfer(op[1], a(op[2]), a(op[3]), op[4])
    if kind == "redeem":
        return agent.redeem(op[1], a(op[2]), op[4])
    if kind == "freeze_partial":
        return agent.freeze_partial(op[1], a(op[2]), op[4])
    raise AssertionError(kind)  # pragma: no cover


def resolve(op: tuple, model: Model, salt: int) -> tuple:
    """The concrete operation: a creator or signer named by its part in the instruction becomes that
    wallet, an instruction named by recency becomes its id; a leg's two wallets are made to differ
    (the body refuses it otherwise)."""
    kind = op[0]
    if kind == "create":
        legs = [(t, f, r if r != f else WALLETS[(WALLETS.index(f) + 1) % len(WALLETS)], n) for t, f, r, n in op[2]]
        creator = {"sender": legs[0][1], "receiver": legs[0][2]}.get(op[1], op[1])
        return (kind, creator, legs, *op[3:])
    known = sorted(model.instructions, reverse=True)
    if kind == "hit":
        if op[1] is None or not known:
            return ("unpause", "TOK")
        legs = model.instructions[known[op[1] % len(known)]]["legs"]
        token, sender, receiver, amount = legs[salt % len(legs)]
        return {"freeze_to": ("freeze", token, receiver), "freeze_from": ("freeze", token, sender),
                "unfreeze_to": ("unfreeze", token, receiver), "unfreeze_from": ("unfreeze", token, sender),
                "pause": ("pause", token), "unpause": ("unpause", token),
                "force_from": ("force", token, sender, "i3a" if sender != "i3a" else "i0a", amount),
                "volume": ("rules", token, RULE_SETS[-1])}[op[2]]
    if kind not in ("affirm", "withdraw", "reject", "execute", "expire"):
        return op
    if op[2] is None or not known:
        return (kind, op[1] if op[1] in WALLETS else "i0a", len(model.instructions) + 100)
    if op[1] == "sender" and kind in ("withdraw", "execute"):
        # mostly one where the operation means something: affirmed by someone (all, to execute)
        fits = [i for i in known if model.instructions[i]["status"] == "pending" and model.instructions[i]["affirmed"]
                and (kind == "withdraw" or len(model.instructions[i]["affirmed"]) == len(
                    {leg[1] for leg in model.instructions[i]["legs"]}))]
        known = fits or known
    instruction_id = known[op[2] % len(known)]
    legs = model.instructions[instruction_id]["legs"]
    pick = legs[salt % len(legs)]
    signer = {"sender": pick[1], "receiver": pick[2]}.get(op[1], op[1])
    affirmed = sorted(model.instructions[instruction_id]["affirmed"])
    if kind == "withdraw" and op[1] == "sender" and affirmed:
        signer = affirmed[salt % len(affirmed)]  # mostly a wallet that did affirm
    return (kind, signer, instruction_id)


def check_store(h: LedgerHarness, model: Model) -> None:
    balances: dict[tuple[str, bytes], tuple[int, int, bool]] = {}
    reserved: dict[tuple[str, bytes], int] = {}
    supply: dict[str, int] = {}
    with h.ledger.store.read() as txn:
        for key, raw in txn.cursor(db=h.ledger.store.dbs["state"]):
            if key.startswith(b"bal:"):
                symbol, address = key[4:].split(b"\x00", 1)
                balances[(symbol.decode(), address)] = decode_value(raw)
            elif key.startswith(b"reserved:"):
                symbol, address = key[9:].split(b"\x00", 1)
                reserved[(symbol.decode(), address)] = decode_value(raw)
            elif key.startswith(b"supply:"):
                supply[key[7:].decode()] = decode_value(raw)[0]
    for token in TOKENS:
        # conservation: the balances sum to the supply, which moved only by issues and redemptions
        assert sum(b for (t, _), (b, _, _) in balances.items() if t == token) == supply[token] == model.supply[token]
        for name in WALLETS:
            assert balances.get((token, address_of(name)), (0, 0, False))[0] == model.balances.get((token, name), 0), \
                (token, name)
    expected = {(t, address_of(w)): n for (t, w), n in model.reserved().items()}
    assert reserved == expected
    if not model.agents_took:
        for key, amount in reserved.items():
            balance, frozen, _ = balances.get(key, (0, 0, False))
            assert amount <= balance - frozen, key
    assert h.ledger.verify_accumulator()


def setup(h: LedgerHarness, model: Model) -> None:
    h.standard_setup()
    for identity, (ws, country, accredited) in INVESTORS.items():
        h.investor(identity, wallets=ws, country=country, accredited=accredited)
    for token in TOKENS:
        h.token(token)
    agent = h.signer("agent")
    h.commit(*(agent.issue(token, address_of(w), 100) for token in TOKENS for w in FUNDED))
    for token in TOKENS:
        model.supply[token] = 100 * len(FUNDED)
        for w in FUNDED:
            model.balances[(token, w)] = 100


def _stored_block(h: LedgerHarness, height: int) -> tuple[Block, bytes]:
    raw, cert = queries.block(h.ledger, height)
    return Block.decode(raw), cert


def _snapshot(ledger: Any) -> dict[str, list[tuple[bytes, bytes]]]:
    ledger.catch_up()  # the read side too (blocks applied here directly are not projected yet)
    with ledger.store.read() as txn:
        return {name: list(txn.cursor(db=ledger.store.dbs[name])) for name in DB_NAMES}


def _check_dry_run(promised: dict[str, Any], op: tuple, receipt: Any) -> None:
    """The dry run before the block said what the block's first operation did."""
    events = receipt.events
    settled = [e for e in events if e.kind == "settlement.settled"]
    failed = [e.data for e in events if e.kind == "settlement.failed"]
    if op[0] == "execute":
        outcome = receipt.outcome
        if not outcome.ok and outcome.code == 0x50 and outcome.reason != "unknown_instruction":
            assert (promised["ok"], promised["code"], promised["reason"]) == (False, 0x50, outcome.reason)
        if settled:
            assert promised["ok"], promised
        if failed:
            assert (promised["leg"], promised["code"], promised["reason"]) == \
                (failed[0]["leg"], failed[0]["code"], failed[0]["reason"]), (promised, failed)
    elif settled or failed:  # an affirmation that completed the set: the legs' verdict, as if affirmed now
        verdict = promised["legs"]
        if settled:
            assert verdict["ok"], verdict
        else:
            assert (verdict["leg"], verdict["code"], verdict["reason"]) == \
                (failed[0]["leg"], failed[0]["code"], failed[0]["reason"]), (verdict, failed)
    event(f"dry run checked: {op[0]} {'settled' if settled else 'failed' if failed else receipt.outcome}")


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plans)
def test_settlement_keeps_every_invariant(plan):
    creates, later = plan
    with tempfile.TemporaryDirectory() as tmp:
        h = LedgerHarness(os.path.join(tmp, "a"))
        mirror = LedgerHarness(os.path.join(tmp, "b"))
        try:
            model = Model()
            setup(h, model)
            for height in range(1, h.ledger.tip.height + 1):
                mirror.ledger.apply_block(*_stored_block(h, height))
            for advance_s, ops in [(1, creates), *later]:
                ops = [resolve(op, model, index) for index, op in enumerate(ops)]
                now_s = (h.time_ms + advance_s * 1000) // 1000
                txs = [sign(h, op, now_s) for op in ops]
                promised = None
                if ops and ops[0][0] in ("execute", "affirm"):
                    try:
                        promised = queries.settlement_check(h.ledger, ops[0][2], time_s=now_s)
                    except queries.NotFound:
                        promised = None
                block = h.block(txs, advance_ms=advance_s * 1000)
                h.ledger.validate_block(block)
                result = h.ledger.apply_block(block, b"cert:" + block.hash)
                for op, receipt in zip(ops, result.receipts, strict=True):
                    step(model, op, receipt)
                    event(f"{op[0]}: {receipt.outcome}")
                    for e in receipt.events:
                        if e.kind in ("settlement.settled", "settlement.failed"):
                            event(f"{e.kind} {e.data.get('reason', '')}".strip())
                if promised is not None:
                    _check_dry_run(promised, ops[0], result.receipts[0])
                check_store(h, model)
                mirror.ledger.validate_block(block)
                assert mirror.ledger.apply_block(block, b"cert:" + block.hash).state_root == result.state_root
            assert _snapshot(mirror.ledger) == _snapshot(h.ledger)
            before = _snapshot(h.ledger)
            h.ledger.rebuild()
            assert _snapshot(h.ledger) == before
        finally:
            h.close()
            mirror.close()


def test_layout_prefixes_the_checker_reads():
    assert layout.reserved("T", b"\x00" * 32).startswith(b"reserved:")
    assert layout.balance("T", b"\x00" * 32).startswith(b"bal:")
    assert layout.supply("T") == b"supply:T"


# --- one attempt, many worlds: all or nothing, foretold by the dry run --------------------------------

#: what may happen between the affirmations and the attempt: aimed at a leg (by index), or anywhere
disruption = st.one_of(
    st.tuples(st.just("aim"), st.integers(0, 3),
              st.sampled_from(["freeze_to", "freeze_from", "pause", "force_from", "volume", "cap", "revoke_to"])),
    others,
)


def _aimed(op: tuple, legs: list[tuple[str, str, str, int]]) -> tuple:
    if op[0] != "aim":
        return op
    token, sender, receiver, amount = legs[op[1] % len(legs)]
    receiver_id = next((i for i, (ws, _, _) in INVESTORS.items() if receiver in ws), "i3")
    return {"freeze_to": ("freeze", token, receiver), "freeze_from": ("freeze", token, sender),
            "pause": ("pause", token), "force_from": ("force", token, sender, "i3a" if sender != "i3a" else "i0a",
                                                      amount),
            "volume": ("rules", token, RULE_SETS[-1]), "cap": ("rules", token, {"balance_max_per_identity": 120}),
            "revoke_to": ("revoke", receiver_id, "kyc")}[op[2]]


def _wallet_balances(h: LedgerHarness) -> dict[tuple[str, str], tuple[int, int]]:
    """(token, wallet) -> (balance, reserved)."""
    with h.ledger.store.read() as txn:
        state = h.ledger.store.state_over(txn)
        return {(t, w): (state.get(layout.balance(t, address_of(w)), (0, 0, False))[0],
                         state.get(layout.reserved(t, address_of(w)), 0)) for t in TOKENS for w in WALLETS}


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(tokens, st.sampled_from(FUNDED), st.sampled_from(WALLETS[:-1]), st.integers(1, 50)),
                min_size=1, max_size=4),
       st.sampled_from(RULE_SETS[:3]), st.lists(disruption, min_size=1, max_size=3), st.sampled_from([1, 60, 4_000]))
def test_an_attempt_moves_every_leg_or_none_and_the_dry_run_foretold_it(legs, rules, disruptions, advance_s):
    legs = [(t, f, r if r != f else WALLETS[(WALLETS.index(f) + 1) % (len(WALLETS) - 1)], n) for t, f, r, n in legs]
    with tempfile.TemporaryDirectory() as tmp:
        h = LedgerHarness(os.path.join(tmp, "a"))
        try:
            setup(h, Model())
            h.commit(*(h.signer("issuer").set_rules(token, rules) for token in TOKENS))
            party = legs[0][1]
            created = h.commit(h.signer(party).create_instruction(
                [(t, address_of(f), address_of(r), n) for t, f, r, n in legs], settlement_type="manual",
                expires_at=h.now_s + 86_400))
            iid = created.receipts[0].events[0].data["id"]
            senders = sorted({f for _, f, _, _ in legs})
            affirmed = h.commit(*(h.signer(s).affirm_instruction(iid) for s in senders))
            event(f"affirmed {sum(r.outcome.ok for r in affirmed.receipts)} of {len(senders)}")
            if disruptions:
                h.commit(*(sign(h, _aimed(op, legs), h.now_s + 1) for op in disruptions))
            now_s = (h.time_ms + advance_s * 1000) // 1000
            promised = queries.settlement_check(h.ledger, iid, time_s=now_s)
            before = _wallet_balances(h)
            receipt = h.commit(h.signer(party).execute_instruction(iid), advance_ms=advance_s * 1000).receipts[0]
            after = _wallet_balances(h)
            settled = any(e.kind == "settlement.settled" for e in receipt.events)
            failed = [e.data for e in receipt.events if e.kind == "settlement.failed"]
            event("settled" if settled else f"failed: {failed[0]['reason']}" if failed else str(receipt.outcome))
            if not receipt.outcome.ok:
                assert (promised["ok"], promised["code"], promised["reason"]) == \
                    (False, receipt.outcome.code, receipt.outcome.reason)
                assert after == before
            elif settled:
                assert promised["ok"] is True
                expected = {key: list(value) for key, value in before.items()}
                for token, sender, receiver, amount in legs:
                    expected[(token, sender)][0] -= amount
                    expected[(token, sender)][1] -= amount
                    expected[(token, receiver)][0] += amount
                assert after == {key: tuple(value) for key, value in expected.items()}
            else:
                (failure,) = failed
                assert (promised["ok"], promised["leg"], promised["code"], promised["reason"]) == \
                    (False, failure["leg"], failure["code"], failure["reason"])
                assert after == before  # nothing moved, every reservation held
            assert queries.settlement_check(h.ledger, iid)["ok"] is False or not settled
        finally:
            h.close()
