"""Property tests of the ledger: random sequences of operations, committed in blocks, checked after
every block by an independent reader of the `state` sub-database and a small model of balances.

After every block:
- per token, the sum of wallet balances equals the total supply; 0 <= frozen <= balance; an
  identity's holding equals the sum of its wallets, its lots sum to it; the holder count equals the
  number of identities holding anything; `verify_accumulator()` holds;
- the model (balances, frozen parts, freezes, pause, claims), moved only by the receipts that
  succeeded, equals the store: a refused transaction changed nothing but its nonce;
- a success never broke a rule the model can judge (pause, freeze, free balance, claims, countries,
  caps), and agent operations the model can predict got exactly the predicted outcome;
- `compliance_check` at the block's time gave the code the block's first transfer got;
- a second store fed the same blocks has the same state root.
At the end both stores are byte-identical in every sub-database, and a rebuild changes no byte.

More examples: SECLEDGER_PROPERTY_EXAMPLES=500 .venv/bin/python -m pytest tests/property -q
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from ledger import layout
from ledger.holdings import LOTS_MAX
from ledger.kinds import AMOUNT_MAX
from ledger.store import DB_NAMES
from ledger.testing import FAR_FUTURE_S, LedgerHarness, address_of

EXAMPLES = int(os.environ.get("SECLEDGER_PROPERTY_EXAMPLES", "40"))

TOKENS = ("TOK", "ALT")
#: identity -> (wallets, country, accredited, investor type)
INVESTORS: dict[str, tuple[tuple[str, ...], str, bool, str | None]] = {
    "i0": (("i0a", "i0b"), "US", True, None),
    "i1": (("i1a", "i1b"), "DE", False, None),
    "i2": (("i2a",), "FR", True, "professional"),
    "i3": (("i3a", "i3b"), "US", False, "retail"),
    "i4": (("i4a",), "FR", True, "institutional"),  # holds nothing at first
}
WALLETS = ("i0a", "i0b", "i1a", "i1b", "i2a", "i3a", "i3b", "i4a", "stranger")
FUNDED = ("i0a", "i0b", "i1a", "i2a", "i3a")
IDENTITY_OF = {w: i for i, (ws, *_) in INVESTORS.items() for w in ws}
RULE_SETS: tuple[dict[str, Any], ...] = (
    {},
    {"required_claims": ["kyc"]},
    {"required_claims": ["accredited", "kyc"], "check_sender": True},
    {"country_allow": ["FR", "US"]},
    {"country_block": ["DE"], "check_sender": True},
    {"investor_types_allow": ["professional"]},
    {"holders_max": 2},
    {"balance_max_per_identity": 60},
    {"supply_cap": 150},
    {"holding_period_s": 86_400},
    {"volume_limit": {"window_s": 3_600, "amount_max": 30}},
    {"holders_max": 3, "holding_period_s": 3_600, "required_claims": ["kyc"],
     "volume_limit": {"window_s": 600, "amount_max": 20}, "balance_max_per_identity": 100},
)

# --- operations --------------------------------------------------------------------------------------------

tokens = st.sampled_from(TOKENS)
wallets = st.sampled_from(WALLETS[:-1] * 4 + ("stranger",))  # the unregistered wallet now and then
amounts = st.one_of(st.integers(1, 30), st.integers(1, 200))
transfer = st.tuples(st.just("transfer"), tokens, wallets, wallets, amounts)
operation = st.one_of(
    transfer, transfer, transfer, transfer,
    st.tuples(st.just("issue"), tokens, wallets, amounts),
    st.tuples(st.just("redeem"), tokens, wallets, amounts),
    st.tuples(st.just("force"), tokens, wallets, wallets, amounts),
    st.tuples(st.sampled_from(["freeze", "unfreeze"]), tokens, wallets),
    st.tuples(st.sampled_from(["freeze_partial", "unfreeze_partial"]), tokens, wallets, st.integers(1, 50)),
    st.tuples(st.sampled_from(["pause", "unpause"]), tokens),
    st.tuples(st.just("recover"), tokens, wallets, wallets),
    st.tuples(st.just("rules"), tokens, st.sampled_from(RULE_SETS)),
    st.tuples(st.just("revoke"), st.sampled_from(sorted(INVESTORS)), st.sampled_from(["accredited", "country", "kyc"])),
    st.tuples(st.just("grant"), st.sampled_from(sorted(INVESTORS)), st.sampled_from(["accredited", "kyc"]),
              st.integers(1, 200_000)),
)
#: a block: seconds since the last one, then its operations
blocks = st.lists(st.tuples(st.sampled_from([1, 5, 600, 3_600, 86_400]), st.lists(operation, max_size=6)),
                  min_size=1, max_size=10)


# --- the model ---------------------------------------------------------------------------------------------


@dataclass
class Model:
    """What the store must hold, moved only by successful receipts."""

    wallets: dict[tuple[str, str], list[Any]] = field(default_factory=dict)  # (token, wallet) -> [bal, frozen, flag]
    paused: dict[str, bool] = field(default_factory=lambda: dict.fromkeys(TOKENS, False))
    rules: dict[str, dict[str, Any]] = field(default_factory=lambda: {t: {} for t in TOKENS})
    claims: dict[tuple[str, str], tuple[str, int]] = field(default_factory=dict)  # (identity, topic) -> (value, exp)
    nonces: dict[str, int] = field(default_factory=dict)

    def wallet(self, token: str, name: str) -> list[Any]:
        return self.wallets.setdefault((token, name), [0, 0, False])

    def held(self, token: str, identity: str) -> int:
        return sum(self.wallet(token, w)[0] for w in INVESTORS[identity][0])

    def holders(self, token: str) -> int:
        return sum(1 for i in INVESTORS if self.held(token, i) > 0)

    def supply(self, token: str) -> int:
        return sum(b for (t, _), (b, _, _) in self.wallets.items() if t == token)

    def claim(self, identity: str, topic: str, now_s: int) -> str | None:
        value = self.claims.get((identity, topic))
        return value[0] if value is not None and value[1] > now_s else None


def _eligible(model: Model, rules: dict[str, Any], identity: str, now_s: int) -> bool:
    if any(model.claim(identity, t, now_s) is None for t in rules.get("required_claims", ())):
        return False
    country = model.claim(identity, "country", now_s)
    if rules.get("country_allow") or rules.get("country_block"):
        if country is None or country in rules.get("country_block", ()):
            return False
        if rules.get("country_allow") and country not in rules["country_allow"]:
            return False
    if rules.get("investor_types_allow"):
        return model.claim(identity, "investor_type", now_s) in rules["investor_types_allow"]
    return True


def _receiver_fits(model: Model, token: str, receiver_id: str, amount: int, leaving: bool) -> bool:
    rules, held = model.rules[token], model.held(token, receiver_id)
    if held + amount > rules.get("balance_max_per_identity", AMOUNT_MAX):
        return False
    if held == 0 and "holders_max" in rules:
        return model.holders(token) + 1 - leaving <= rules["holders_max"]
    return True


def _take(model: Model, token: str, name: str, amount: int) -> None:
    """Debit with an agent's right to take frozen units: exactly the excess is unfrozen."""
    w = model.wallet(token, name)
    w[1] -= max(0, amount - (w[0] - w[1]))
    w[0] -= amount


def step(model: Model, op: tuple, outcome: str, now_s: int) -> None:
    """Check a receipt against the model's state before it, then move the model if it succeeded."""
    ok = outcome == "0x51 success"
    kind, args = op[0], op[1:]
    predicted: bool | None = None  # for operations the model can fully predict
    if kind == "issue":
        token, to, amount = args
        rid = IDENTITY_OF.get(to)
        if ok:
            assert rid is not None and model.supply(token) + amount <= model.rules[token].get("supply_cap", AMOUNT_MAX)
            assert _eligible(model, model.rules[token], rid, now_s)
            assert _receiver_fits(model, token, rid, amount, False)
            model.wallet(token, to)[0] += amount
    elif kind == "transfer":
        token, sender, to, amount = args
        sid, rid = IDENTITY_OF.get(sender), IDENTITY_OF.get(to)
        if ok:
            s, r = model.wallet(token, sender), model.wallet(token, to)
            assert not model.paused[token] and sid is not None and rid is not None and sender != to
            assert not s[2] and not r[2] and s[0] - s[1] >= amount
            if sid != rid:
                rules = model.rules[token]
                assert _eligible(model, rules, rid, now_s)
                assert not rules.get("check_sender") or _eligible(model, rules, sid, now_s)
                assert _receiver_fits(model, token, rid, amount, model.held(token, sid) == amount)
            s[0] -= amount
            r[0] += amount
    elif kind == "force":
        token, sender, to, amount = args
        sid, rid = IDENTITY_OF.get(sender), IDENTITY_OF.get(to)
        if ok:
            assert sid is not None and rid is not None and sender != to
            assert model.wallet(token, sender)[0] >= amount
            rules = model.rules[token]
            assert all(model.claim(rid, t, now_s) is not None for t in rules.get("required_claims", ()))
            _take(model, token, sender, amount)
            model.wallet(token, to)[0] += amount
    elif kind == "redeem":
        token, name, amount = args
        predicted = model.wallet(token, name)[0] >= amount
        if ok:
            _take(model, token, name, amount)
    elif kind in ("freeze", "unfreeze"):
        token, name = args
        w = model.wallet(token, name)
        predicted = w[2] != (kind == "freeze")
        if ok:
            w[2] = kind == "freeze"
    elif kind in ("freeze_partial", "unfreeze_partial"):
        token, name, amount = args
        w = model.wallet(token, name)
        predicted = w[1] + amount <= w[0] if kind == "freeze_partial" else amount <= w[1]
        if ok:
            w[1] += amount if kind == "freeze_partial" else -amount
    elif kind in ("pause", "unpause"):
        (token,) = args
        predicted = model.paused[token] != (kind == "pause")
        if ok:
            model.paused[token] = kind == "pause"
    elif kind == "recover":
        token, lost, new = args
        lw, nw = model.wallet(token, lost), model.wallet(token, new)
        predicted = (IDENTITY_OF.get(lost) is not None and lost != new
                     and IDENTITY_OF.get(new) == IDENTITY_OF[lost] and (lw[0] > 0 or lw[2]))
        if ok:
            nw[0], nw[1], nw[2] = nw[0] + lw[0], nw[1] + lw[1], nw[2] or lw[2]
            lw[0], lw[1], lw[2] = 0, 0, False
    elif kind == "rules":
        token, rules = args
        predicted = True
        if ok:
            model.rules[token] = rules
    elif kind == "revoke":
        identity, topic = args
        predicted = (identity, topic) in model.claims
        if ok:
            del model.claims[(identity, topic)]
    elif kind == "grant":
        identity, topic, _ = args
        predicted = True
        if ok:
            model.claims[(identity, topic)] = ("", now_s + args[2])
    else:  # pragma: no cover
        raise AssertionError(kind)
    if predicted is not None:
        assert ok == predicted, f"{op}: {outcome}, the model expected {'success' if predicted else 'a refusal'}"


# --- driving the ledger ------------------------------------------------------------------------------------


def setup(h: LedgerHarness, model: Model) -> None:
    h.standard_setup()
    for identity, (ws, country, accredited, investor_type) in INVESTORS.items():
        h.investor(identity, wallets=ws, country=country, accredited=accredited, investor_type=investor_type)
        model.claims[(identity, "kyc")] = ("", FAR_FUTURE_S)
        model.claims[(identity, "country")] = (country, FAR_FUTURE_S)
        if accredited:
            model.claims[(identity, "accredited")] = ("", FAR_FUTURE_S)
        if investor_type:
            model.claims[(identity, "investor_type")] = (investor_type, FAR_FUTURE_S)
    for token in TOKENS:
        h.token(token)
    agent = h.signer("agent")
    h.commit(*(agent.issue(token, address_of(w), 100) for token in TOKENS for w in FUNDED))
    for token in TOKENS:
        for w in FUNDED:
            model.wallet(token, w)[0] = 100
    model.nonces["agent"] = agent.nonce


def sign(h: LedgerHarness, op: tuple, now_s: int) -> bytes:
    kind, args = op[0], op[1:]
    agent = h.signer("agent")
    a = address_of
    if kind == "issue":
        return agent.issue(args[0], a(args[1]), args[2])
    if kind == "transfer":
        return h.signer(args[1]).transfer(args[0], a(args[2]), args[3])
    if kind == "force":
        return agent.force_transfer(args[0], a(args[1]), a(args[2]), args[3])
    if kind == "redeem":
        return agent.redeem(args[0], a(args[1]), args[2])
    if kind in ("freeze", "unfreeze"):
        return getattr(agent, kind)(args[0], a(args[1]))
    if kind in ("freeze_partial", "unfreeze_partial"):
        return getattr(agent, kind)(args[0], a(args[1]), args[2])
    if kind in ("pause", "unpause"):
        return getattr(agent, kind)(args[0])
    if kind == "recover":
        return agent.recover(args[0], a(args[1]), a(args[2]))
    if kind == "rules":
        return h.signer("issuer").set_rules(args[0], args[1])
    if kind == "revoke":
        return h.signer("kyc").revoke_claim(args[0], args[1])
    if kind == "grant":
        return h.signer("kyc").grant_claim(args[0], args[1], now_s + args[2])
    raise AssertionError(kind)  # pragma: no cover


def check_store(h: LedgerHarness, model: Model) -> None:
    """The independent checker: read every entry of `state` and check the invariants, then the model."""
    ledger = h.ledger
    balances: dict[tuple[str, bytes], tuple[int, int, bool]] = {}
    holdings: dict[tuple[str, str], tuple[int, tuple]] = {}
    supply: dict[str, tuple[int, int]] = {}
    owner_of: dict[bytes, str] = {}
    tokens_seen: dict[str, dict] = {}
    with ledger.store.read() as txn:
        for key, raw in txn.cursor(db=ledger.store.dbs["state"]):
            value = _decode(raw)
            if key.startswith(b"bal:"):
                symbol, address = key[4:].split(b"\x00", 1)
                balances[(symbol.decode(), address)] = value
            elif key.startswith(b"holding:"):
                symbol, identity = key[8:].split(b"\x00", 1)
                holdings[(symbol.decode(), identity.decode())] = value
            elif key.startswith(b"supply:"):
                supply[key[7:].decode()] = value
            elif key.startswith(b"wallet:"):
                owner_of[key[7:]] = value
            elif key.startswith(b"token:"):
                tokens_seen[key[6:].decode()] = value
    for (symbol, address), (bal, frozen, flag) in balances.items():
        assert 0 <= frozen <= bal and (bal, frozen, flag) != (0, 0, False), (symbol, address, bal, frozen)
        assert bal == 0 or address in owner_of, "a balance on an unregistered wallet"
    for symbol, (total, holder_count) in supply.items():
        assert 0 <= total <= AMOUNT_MAX
        assert sum(b for (s, _), (b, _, _) in balances.items() if s == symbol) == total, symbol
        per_identity: dict[str, int] = {}
        for (s, address), (b, _, _) in balances.items():
            if s == symbol and b:
                per_identity[owner_of[address]] = per_identity.get(owner_of[address], 0) + b
        mine = {i: v for (s, i), v in holdings.items() if s == symbol}
        assert {i: v[0] for i, v in mine.items()} == per_identity, symbol
        for identity, (held, flat) in mine.items():
            assert len(flat) % 2 == 0, (identity, flat)
            lots = list(zip(flat[::2], flat[1::2], strict=True))
            assert held > 0 and sum(n for _, n in lots) == held and all(n > 0 for _, n in lots), (identity, lots)
            assert [t for t, _ in lots] == sorted(t for t, _ in lots) and len(lots) <= LOTS_MAX
        assert holder_count == len(per_identity), symbol
    assert ledger.verify_accumulator()
    # the model
    for token in TOKENS:
        assert tokens_seen[token]["paused"] == model.paused[token]
        assert tokens_seen[token]["rules"] == _tuples(model.rules[token])
        for name in WALLETS:
            w = model.wallet(token, name)
            assert balances.get((token, address_of(name)), (0, 0, False)) == tuple(w), (token, name)
    for name, count in model.nonces.items():
        assert ledger.next_nonce(address_of(name)) == count, name


def _decode(raw: bytes) -> Any:
    from ledger.state import decode_value

    return decode_value(raw)


def _tuples(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _tuples(v) for k, v in value.items()}
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    return value


def _snapshot(ledger) -> dict[str, list[tuple[bytes, bytes]]]:
    ledger.catch_up()  # the read side too (blocks applied here directly are not projected yet)
    with ledger.store.read() as txn:
        return {name: list(txn.cursor(db=ledger.store.dbs[name])) for name in DB_NAMES}


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(blocks)
def test_random_operations_keep_every_invariant(plan):
    with tempfile.TemporaryDirectory() as tmp:
        h = LedgerHarness(os.path.join(tmp, "a"))
        mirror = LedgerHarness(os.path.join(tmp, "b"))
        try:
            model = Model()
            setup(h, model)
            for height in range(1, h.ledger.tip.height + 1):  # the mirror catches up on set-up
                mirror.ledger.apply_block(*_stored_block(h, height))
            for advance_s, ops in plan:
                now_s = (h.time_ms + advance_s * 1000) // 1000
                txs = [sign(h, op, now_s) for op in ops]
                promised = None
                if ops and ops[0][0] == "transfer":
                    _, token, sender, to, amount = ops[0]
                    promised = h.ledger.compliance_check(token, address_of(sender), address_of(to), amount,
                                                         time_s=now_s)
                block = h.block(txs, advance_ms=advance_s * 1000)
                assert block.header.time_ms // 1000 == now_s
                h.ledger.validate_block(block)
                result = h.ledger.apply_block(block, b"cert:" + block.hash)
                if promised is not None:
                    assert promised == result.receipts[0].outcome, (ops[0], str(promised))
                for op, receipt in zip(ops, result.receipts, strict=True):
                    signer = _signer_name(op)
                    model.nonces[signer] = h.signer(signer).nonce
                    step(model, op, str(receipt.outcome), now_s)
                    event(f"{op[0]}: {receipt.outcome}")
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


def _stored_block(h: LedgerHarness, height: int):
    from ledger import queries
    from ledger.block import Block

    raw, cert = queries.block(h.ledger, height)
    return Block.decode(raw), cert


def _signer_name(op: tuple) -> str:
    if op[0] == "transfer":
        return op[2]
    if op[0] == "rules":
        return "issuer"
    if op[0] in ("revoke", "grant"):
        return "kyc"
    return "agent"


def test_layout_prefixes_do_not_overlap():
    """The checker's key parsing relies on these prefixes."""
    assert layout.balance("T", b"\x00" * 32).startswith(b"bal:")
    assert layout.holding("T", "i").startswith(b"holding:")
    assert layout.supply("T") == b"supply:T"
