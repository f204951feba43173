"""The read side (ledger/projections.py): the tx index, the event indexes and wallet history are
projected after each block, in slices of their own write transactions. Whatever the slicing, and
wherever a crash falls, every query answers exactly as on a store that was projected block by
block and never crashed; above the projector's position the answers come from the write side."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from ledger import queries, testing
from ledger.block import Block
from ledger.chain import Ledger
from ledger.errors import StoreError
from ledger.projections import FAULT_POINTS
from ledger.state import decode_value
from ledger.store import READ_SIDE_DBS, STORE_FORMAT
from ledger.testing import FAR_FUTURE_S, LedgerHarness, address_of

A = address_of
WALLETS = ("issuer", "alice", "alice-2", "alice-3", "bob", "carol", "dave", "erin", "zed")
IDENTITIES = ("treasury", "alice", "bob", "carol", "dave", "erin", "ghost")


class Crash(Exception):
    """What a test's fault hook raises: the process died there."""


def story(h: LedgerHarness) -> None:
    """Blocks with every kind of index entry: registrations early, late and in the same block as a
    refusal that names the wallet, transfers, a refusal because of the receiver, a wallet added,
    a recovery, freezes, redemptions, a distribution paid to identities, a rules change."""
    h.standard_setup()
    h.investor("treasury", wallets=("issuer",))
    h.investor("alice", wallets=("alice", "alice-2"))
    h.investor("bob")
    h.investor("carol", country="FR")
    h.token("ACME", rules={"country_block": ["FR"]})
    h.token("USD")
    agent, alice, kyc = h.signer("agent"), h.signer("alice"), h.signer("kyc")
    h.commit(agent.issue("ACME", A("alice"), 100), agent.issue("USD", A("issuer"), 1_000),
             agent.issue("ACME", A("bob"), 40))
    record = h.ledger.tip.height
    h.commit(alice.transfer("ACME", A("bob"), 10), alice.transfer("ACME", A("carol"), 5))
    h.commit(h.signer("dave").transfer("ACME", A("bob"), 1))  # dave registers only later
    h.commit(h.signer("erin").transfer("ACME", A("bob"), 1), kyc.register_identity("erin", [A("erin")]),
             h.signer("erin").transfer("ACME", A("bob"), 1))
    h.commit(kyc.revoke_claim("alice", "kyc"), kyc.add_wallet("alice", A("alice-3")),
             agent.issue("ACME", A("alice-3"), 7), h.signer("zed").transfer("ACME", A("alice-3"), 1))
    h.commit(agent.recover("ACME", A("alice"), A("alice-2")), h.signer("bob").transfer("ACME", A("alice-3"), 2))
    h.investor("dave")
    h.commit(agent.freeze_partial("ACME", A("alice-2"), 50), agent.redeem("ACME", A("bob"), 3),
             h.signer("issuer").set_rules("ACME", {}))
    h.commit(h.signer("issuer").declare_distribution("DIV", "ACME", "USD", record_height=record, rate_num=1,
                                                     rate_den=1, expires_at=FAR_FUTURE_S))
    h.commit(h.signer("issuer").pay_distribution("DIV", [("bob", A("bob")), ("alice", A("alice-2"))]),
             h.signer("bob").transfer("ACME", A("dave"), 4), h.signer("dave").transfer("ACME", A("bob"), 1))
    h.commit()  # an empty block
    h.commit(h.signer("dave").transfer("ACME", A("alice-3"), 1), kyc.grant_claim("dave", "accredited", FAR_FUTURE_S))


def _all_pages(call: Callable[..., dict[str, Any]], key: str, **filters: Any) -> list[Any]:
    out, after = [], None
    while True:
        page = call(after=after, limit=2, **filters)
        out.append(page[key])
        after = page["next"]
        if after is None:
            return out


def answers(ledger: Ledger) -> dict[str, Any]:
    """Every read-side query over the story, each answer as the query gives it, paged small."""
    top = ledger.tip.height
    out: dict[str, Any] = {"tip": ledger.tip}
    with ledger.store.read() as txn:
        hashes = [decode_value(raw)["tx"] for _, raw in ledger.store.iter_prefix(txn, "receipts", b"")]
    out["txs"] = [queries.transaction(ledger, tx_hash) for tx_hash in hashes]
    out["unknown tx"] = ledger.tx_location(b"\x07" * 32)
    filters: list[dict[str, Any]] = [{}, {"token": "ACME"}, {"token": "USD"}, {"kind": "token.transferred"},
                                     {"kind": "tx.rejected"}, {"token": "ACME", "kind": "token.issued"}]
    filters += [{"address": A(w)} for w in WALLETS] + [{"identity": i} for i in IDENTITIES]
    filters += [{"identity": "alice", "token": "ACME"}, {"identity": "bob", "kind": "distribution.paid"}]
    for f in filters:
        for low, high in ((0, None), (top - 2, None), (3, top - 3), (top, top)):
            out[f"events {f} {low}-{high}"] = _all_pages(lambda **kw: queries.events(ledger, **kw), "events",
                                                         from_height=low, to_height=high, **f)
    for identity in IDENTITIES[:-1]:
        out[f"trail {identity}"] = _all_pages(lambda who=identity, **kw: queries.identity_history(ledger, who, **kw),
                                              "events")
    for height in range(0, top + 1):
        for wallet in WALLETS:
            for token in ("ACME", "USD"):
                out[f"balance {token} {wallet} {height}"] = queries.balance(ledger, token, A(wallet), height)
        out[f"holders {height}"] = queries.holders(ledger, "ACME", height=height)
    return out


def read_side(ledger: Ledger) -> dict[str, list[tuple[bytes, bytes]]]:
    with ledger.store.read() as txn:
        return {name: list(txn.cursor(db=ledger.store.dbs[name])) for name in READ_SIDE_DBS + ("wallet_changes",)}


@pytest.fixture
def reference(tmp_path_factory) -> tuple[dict[str, Any], dict[str, list[tuple[bytes, bytes]]], list[tuple[Block, bytes]]]:
    """The story on a store projected after each block, never crashed: its answers, its read side,
    and its blocks with their certificates."""
    h = LedgerHarness(str(tmp_path_factory.mktemp("reference") / "store"), project=True)
    story(h)
    blocks = []
    for height in range(1, h.ledger.tip.height + 1):
        raw, cert = queries.block(h.ledger, height)
        blocks.append((Block.decode(raw), cert))
    result = answers(h.ledger), read_side(h.ledger), blocks
    h.close()
    return result


def test_a_committed_block_is_found_by_every_query_before_it_is_projected(tmp_path, reference):
    expected, expected_read_side, _ = reference
    h = LedgerHarness(str(tmp_path / "store"), project=False)
    story(h)
    assert h.ledger.projected_height == 0 < h.ledger.tip.height
    assert answers(h.ledger) == expected  # every answer from the write side
    with h.ledger.store.read() as txn:
        assert all(next(txn.cursor(db=h.ledger.store.dbs[name]).iternext(), None) is None
                   for name in ("txs", "ev_kind", "ev_address", "ev_identity", "hist_wallet"))
    h.ledger.catch_up()
    assert h.ledger.projected_height == h.ledger.tip.height
    assert answers(h.ledger) == expected
    assert read_side(h.ledger) == expected_read_side
    h.close()


@pytest.mark.parametrize("reopened", [False, True], ids=["from memory", "from the store"])
@pytest.mark.parametrize("items_max", [1, 2, 3, 5, 8, 1000])
def test_any_slicing_gives_the_same_answers_at_every_position(tmp_path, reference, items_max, reopened):
    """Slices of a few items stop inside blocks and inside nothing else (a transaction's events
    are never split): at every stop, and at the end, the answers are the reference's; whether the
    projector reads the blocks as this process applied them or, after a restart, from the store."""
    expected, expected_read_side, blocks = reference
    ledger = Ledger.open(str(tmp_path / "store"), testing.test_genesis())
    for block, cert in blocks:
        ledger.apply_block(block, cert)
    if reopened:
        ledger.close()
        ledger = Ledger.open(str(tmp_path / "store"), testing.test_genesis())
    positions = set()
    while ledger.project(items_max):
        positions.add((ledger.projector.projected_height, ledger.projector.projected_txs))
        if len(positions) % 7 == 1:
            assert answers(ledger) == expected
    assert answers(ledger) == expected
    assert read_side(ledger) == expected_read_side
    if items_max <= 3:
        assert any(txs > 0 for _, txs in positions)  # it did stop inside blocks
    ledger.close()


def _crash_at(point: str, count: int) -> Callable[[str], None]:
    seen = {"n": 0}

    def hook(reached: str) -> None:
        if reached == point:
            seen["n"] += 1
            if seen["n"] == count:
                raise Crash(f"{point} #{count}")

    return hook


@pytest.mark.parametrize("point", FAULT_POINTS)
@pytest.mark.parametrize("count", [1, 4, 11])
def test_a_crash_at_any_fault_point_loses_nothing(tmp_path, reference, point, count):
    """The node's order (apply, then slices of the projector) with a crash at the point; then the
    store is reopened as a restarted process would, and the chain goes on. Before and after the
    projector catches up, every answer is the reference's, and the read side is byte for byte the
    reference's."""
    expected, expected_read_side, blocks = reference
    path = str(tmp_path / "store")
    genesis = testing.test_genesis()
    ledger = Ledger.open(path, genesis)
    ledger.fault = _crash_at(point, count)
    crashed_at = None
    for index, (block, cert) in enumerate(blocks):
        try:
            ledger.apply_block(block, cert)
            while ledger.project(3):
                pass
        except Crash:
            crashed_at = index
            break
    assert crashed_at is not None, f"{point} was reached fewer than {count} times"
    ledger.close()  # the process died; nothing in memory survives

    ledger = Ledger.open(path, genesis)
    for block, cert in blocks[ledger.tip.height:]:
        ledger.apply_block(block, cert)  # the rest of the chain, nothing projected yet
    assert answers(ledger) == expected
    ledger.catch_up()
    assert answers(ledger) == expected
    assert read_side(ledger) == expected_read_side
    ledger.close()


def test_a_crash_inside_a_slice_rolls_back_the_whole_slice(tmp_path, reference):
    _, _, blocks = reference
    path = str(tmp_path / "store")
    ledger = Ledger.open(path, testing.test_genesis())
    for block, cert in blocks:
        ledger.apply_block(block, cert)
    before = read_side(ledger)
    ledger.fault = _crash_at("projected_tx", 5)
    with pytest.raises(Crash):
        ledger.project(1000)
    assert read_side(ledger) == before  # not one entry of the slice, and the position unchanged
    with ledger.store.read() as txn:
        assert ledger.store.get_meta(txn, "projected_height") == 0
    ledger.close()


def test_wallet_changes_are_the_blocks_input_and_are_consumed_by_their_projection(tmp_path):
    h = LedgerHarness(str(tmp_path / "store"), project=False)
    story(h)
    changes = read_side(h.ledger)["wallet_changes"]
    heights = sorted({int.from_bytes(key[:8], "big") for key, _ in changes})
    assert heights and heights[-1] <= h.ledger.tip.height
    assert [key for key, _ in changes] == sorted(key for key, _ in changes)  # appended in key order
    h.ledger.catch_up()
    assert read_side(h.ledger)["wallet_changes"] == []
    h.close()


def test_rebuild_gives_the_same_answers_byte_for_byte(tmp_path, reference):
    expected, expected_read_side, _ = reference
    h = LedgerHarness(str(tmp_path / "store"), project=True)
    story(h)
    assert answers(h.ledger) == expected
    report = h.ledger.rebuild()
    assert report.repaired_heights == () and h.ledger.projected_height == h.ledger.tip.height
    assert answers(h.ledger) == expected
    assert read_side(h.ledger) == expected_read_side
    h.close()


def test_a_crash_in_the_projection_after_a_rebuild_resumes_on_the_next_open(tmp_path, reference):
    expected, expected_read_side, _ = reference
    path = str(tmp_path / "store")
    h = LedgerHarness(path, project=True)
    story(h)
    h.ledger.fault = _crash_at("projected_tx", 20)
    with pytest.raises(Crash):
        h.ledger.rebuild()  # the replay committed, its projection did not
    h.close()
    ledger = Ledger.open(path, h.genesis)
    assert ledger.projected_height < ledger.tip.height
    assert answers(ledger) == expected
    ledger.catch_up()
    assert read_side(ledger) == expected_read_side
    ledger.close()


def test_a_store_that_joined_by_state_sync_projects_from_its_snapshot(tmp_path, reference):
    """No event before the snapshot is on the node: the projector starts with the block after it;
    who was registered comes from the snapshot's state, balances at its height from its entries."""
    expected, _, blocks = reference
    archive = Ledger.open(str(tmp_path / "archive"), testing.test_genesis())
    snapshot_height = 8
    for block, cert in blocks[:snapshot_height]:
        archive.apply_block(block, cert)
    with archive.store.read() as txn:
        point, entries = archive.snapshot_point(txn), list(archive.snapshot_entries(txn))
    joined = Ledger.open(str(tmp_path / "joined"), testing.test_genesis())
    joined.install_snapshot(point, entries, certified_root=point.state_root)
    assert joined.projected_height == snapshot_height and joined.history_from == snapshot_height + 1
    for block, cert in blocks[snapshot_height:]:
        joined.apply_block(block, cert)
    top = joined.tip.height

    def after_snapshot(ledger: Ledger) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in [{}, {"token": "ACME"}, {"kind": "token.transferred"}, {"address": A("bob")}] + \
                 [{"identity": i} for i in IDENTITIES]:
            out[str(f)] = queries.events(ledger, from_height=snapshot_height + 1, limit=1000, **f)
        for height in range(snapshot_height, top + 1):
            for wallet in WALLETS:
                out[f"{wallet} {height}"] = queries.balance(ledger, "ACME", A(wallet), height)
        with ledger.store.read() as txn:
            hashes = [decode_value(raw)["tx"] for _, raw in
                      ledger.store.iter_prefix(txn, "receipts", b"", (snapshot_height + 1).to_bytes(8, "big"))]
        out["txs"] = [queries.transaction(ledger, tx_hash) for tx_hash in hashes]
        return out

    unprojected = after_snapshot(joined)
    joined.catch_up()
    projected = after_snapshot(joined)
    for block, cert in blocks[snapshot_height:]:
        archive.apply_block(block, cert)
    archive.catch_up()
    assert unprojected == projected == after_snapshot(archive)
    assert projected["txs"] == [t for t in expected["txs"] if t["height"] > snapshot_height]
    assert projected["{'identity': 'dave'}"]["events"]  # registered after the snapshot
    assert projected["{'identity': 'alice'}"]["events"]  # registered before it: from its state
    with pytest.raises(StoreError, match="joined by state sync"):
        joined.rebuild()
    joined.close()
    archive.close()


def test_a_store_of_index_format_2_is_migrated_in_place(tmp_path, reference):
    """Format 2 wrote every index with its block: its projections are complete at its tip. It is
    opened with that as the projector's position and `registrations` from its state, and the
    blocks after it are projected like any other."""
    expected, expected_read_side, blocks = reference
    path = str(tmp_path / "store")
    ledger = Ledger.open(path, testing.test_genesis())
    half = len(blocks) // 2
    for block, cert in blocks[:half]:
        ledger.apply_block(block, cert)
    ledger.catch_up()
    with ledger.store.write() as txn:  # what a format-2 store holds: no position, no registrations
        txn.drop(ledger.store.dbs["registrations"], delete=False)
        for name in ("projected_height", "projected_txs"):
            txn.delete(name.encode(), db=ledger.store.dbs["meta"])
        ledger.store.put_meta(txn, "index_format", 2)
    ledger.close()
    ledger = Ledger.open(path, testing.test_genesis())
    assert ledger.projected_height == ledger.tip.height == half
    for block, cert in blocks[half:]:
        ledger.apply_block(block, cert)
    assert answers(ledger) == expected
    ledger.catch_up()
    assert read_side(ledger) == expected_read_side
    with ledger.store.read() as txn:
        assert ledger.store.get_meta(txn, "store_format") == STORE_FORMAT  # the roots did not change
    ledger.close()


def test_with_nothing_to_project_no_write_transaction_is_made(tmp_path):
    h = LedgerHarness(str(tmp_path / "store"), project=True)
    story(h)
    with h.ledger.store.read() as txn:
        before = txn.id()
    assert h.ledger.project() is False
    h.ledger.catch_up()
    with h.ledger.store.read() as txn:
        assert txn.id() == before  # the store's transaction id did not move: nothing committed
    h.close()
