"""The store: blocks checked against the chain before anything is written, one write per block,
the state accumulator and root, a rebuild from the log that reproduces every byte, and two stores
fed the same blocks ending byte-identical."""

from __future__ import annotations

import dataclasses

import msgpack
import pytest

from ledger import codec, layout, queries, testing
from ledger.block import Block
from ledger.chain import Ledger
from ledger.errors import InvalidBlock, StateRootMismatch, StoreError
from ledger.store import STORE_FORMAT, Store, event_key, results_hash, state_root
from ledger.testing import FAR_FUTURE_S, LedgerHarness, address_of


def _busy_history(chain) -> None:
    """A few blocks touching every kind of record, refusals included."""
    chain.investor("alice", accredited=True, wallets=("alice", "alice-2"))
    chain.investor("bob", country="FR")
    chain.token("ACME", rules={"holders_max": 10, "holding_period_s": 5})
    agent, alice = chain.signer("agent"), chain.signer("alice")
    chain.commit(agent.issue("ACME", address_of("alice"), 100), agent.issue("ACME", address_of("bob"), 3),
                 agent.issue("ACME", address_of("nobody"), 3))
    chain.commit(alice.transfer("ACME", address_of("bob"), 10), advance_ms=10_000)
    chain.commit(agent.freeze_partial("ACME", address_of("alice"), 50), alice.transfer("ACME", address_of("bob"), 60),
                 agent.recover("ACME", address_of("alice"), address_of("alice-2")),
                 chain.signer("kyc").grant_claim("bob", "accredited", FAR_FUTURE_S))
    chain.commit(agent.redeem("ACME", address_of("bob"), 13), chain.signer("issuer").set_rules("ACME", {}))


def _blocks(ledger: Ledger) -> list[tuple[Block, bytes]]:
    out = []
    for height in range(1, ledger.tip.height + 1):
        raw, cert = queries.block(ledger, height)
        out.append((Block.decode(raw), cert))
    return out


def test_rebuild_reproduces_every_projection_byte_for_byte(chain, snapshot):
    _busy_history(chain)
    before = snapshot(chain.ledger)
    tip = chain.ledger.tip
    report = chain.ledger.rebuild()
    assert report.height == tip.height and report.repaired_heights == ()
    assert chain.ledger.tip == tip
    assert snapshot(chain.ledger) == before
    assert chain.ledger.verify_accumulator()


def test_two_stores_fed_the_same_blocks_end_byte_identical(chain, snapshot, tmp_path):
    _busy_history(chain)
    other = Ledger.open(str(tmp_path / "other"), chain.genesis)
    try:
        for block, cert in _blocks(chain.ledger):
            other.validate_block(block)
            result = other.apply_block(block, cert)
            assert result.state_root == queries.state_root_at(chain.ledger, block.height)
        other.catch_up()  # the read side, projected in one go here, block by block there
        assert snapshot(other) == snapshot(chain.ledger)
    finally:
        other.close()


def test_apply_without_validate_checks_signatures_itself(chain, tmp_path):
    _busy_history(chain)
    other = Ledger.open(str(tmp_path / "other"), chain.genesis)
    try:
        for block, cert in _blocks(chain.ledger):
            other.apply_block(block, cert)
        assert other.tip == chain.ledger.tip
    finally:
        other.close()


def test_reopening_a_store_keeps_the_tip(chain, tmp_path):
    _busy_history(chain)
    tip = chain.ledger.tip
    path = chain.ledger.store.env.path()
    chain.ledger.close()
    again = Ledger.open(path, chain.genesis)
    try:
        assert again.tip == tip and again.verify_accumulator()
    finally:
        again.close()
    chain.ledger = Ledger.open(path, chain.genesis)  # for the fixture's close


def test_a_store_of_another_chain_is_refused(chain):
    path = chain.ledger.store.env.path()
    chain.ledger.close()
    with pytest.raises(StoreError):
        Ledger.open(path, testing.test_genesis(chain_id="other-chain"))
    chain.ledger = Ledger.open(path, chain.genesis)


def test_stored_receipts_and_events_are_canonical_bytes(chain):
    """They are packed without codec.encode's walk (the per-block hot path); the results hash in
    every state root covers these bytes, so they must be exactly what codec.encode gives."""
    _busy_history(chain)
    with chain.ledger.store.read() as txn:
        for db in ("receipts", "events"):
            stored = [raw for _, raw in chain.ledger.store.iter_prefix(txn, db, b"")]
            assert stored
            for raw in stored:
                assert codec.encode(msgpack.unpackb(raw, raw=False)) == raw


def test_a_store_of_an_older_format_is_refused_by_name(chain):
    path = chain.ledger.store.env.path()
    with chain.ledger.store.write() as txn:
        chain.ledger.store.put_meta(txn, "store_format", 1)
    chain.ledger.close()
    with pytest.raises(StoreError, match=f"format 1, this secledger reads format {STORE_FORMAT}"):
        Ledger.open(path, chain.genesis)
    store = Store(path)
    with store.write() as txn:
        store.put_meta(txn, "store_format", STORE_FORMAT)
    store.close()
    chain.ledger = Ledger.open(path, chain.genesis)  # for the fixture's close


def test_the_tip_kept_after_each_apply_is_the_one_stored(chain):
    _busy_history(chain)
    kept = chain.ledger.tip
    path = chain.ledger.store.env.path()
    chain.ledger.close()
    chain.ledger = Ledger.open(path, chain.genesis)
    assert chain.ledger.tip == kept


def test_a_height_written_out_of_order_is_refused_by_name(chain):
    store = chain.ledger.store
    with pytest.raises(StoreError, match="does not follow the last one"), store.write() as txn:
        store.append(txn, "blocks", (chain.ledger.tip.height).to_bytes(8, "big"), b"again")


def test_accumulator_audits_the_state(chain):
    _busy_history(chain)
    assert chain.ledger.verify_accumulator()
    with chain.ledger.store.write() as txn:
        txn.put(layout.nonce(address_of("alice")), b"\x05", db=chain.ledger.store.dbs["state"])
    assert not chain.ledger.verify_accumulator()


def test_state_root_commits_to_state_and_results():
    acc = 12345
    assert state_root(1, acc, b"r" * 32) != state_root(1, acc + 1, b"r" * 32)
    assert state_root(1, acc, b"r" * 32) != state_root(1, acc, b"s" * 32)
    assert state_root(1, acc, b"r" * 32) != state_root(2, acc, b"r" * 32)


def test_a_refused_transaction_changes_the_root_only_through_its_nonce_and_receipt(tmp_path):
    """Same state before; one chain refuses a transaction, the other has an empty block: the
    roots differ (receipts and the nonce are committed), which is what makes refusals auditable."""
    roots = []
    for name, txs in (("a", True), ("b", False)):
        h = LedgerHarness(str(tmp_path / name))
        h.standard_setup()
        result = h.commit(*([h.signer("nobody").grant_role("admin", address_of("x"))] if txs else []))
        roots.append(result.state_root)
        h.close()
    assert roots[0] != roots[1]


# --- blocks that do not fit the chain ----------------------------------------------------------------


def _replace_header(block: Block, **changes) -> Block:
    return Block(dataclasses.replace(block.header, **changes), block.txs)


@pytest.mark.parametrize("change, message", [
    ({"chain_id": "other"}, "block for chain"),
    ({"height": 99}, "expected"),
    ({"previous_block_hash": b"\x01" * 32}, "previous block hash"),
    ({"time_ms": 0}, "not after"),
    ({"txs_hash": b"\x02" * 32}, "txs hash"),
    ({"validators_hash": b"\x04" * 32}, "validators hash does not match the set of height"),
    ({"next_validators_hash": b"\x05" * 32}, "next validators hash does not match"),
])
def test_header_checks(chain, snapshot, change, message):
    block = _replace_header(chain.block([chain.signer("admin").grant_role("admin", address_of("x"))]), **change)
    before = snapshot(chain.ledger)
    with pytest.raises(InvalidBlock, match=message):
        chain.ledger.validate_block(block)
    with pytest.raises(InvalidBlock, match=message):
        chain.ledger.apply_block(block, b"cert")
    assert snapshot(chain.ledger) == before


def test_a_certified_block_on_another_state_root_stops_the_node(chain, snapshot):
    block = _replace_header(chain.block([]), previous_state_root=b"\x03" * 32)
    before = snapshot(chain.ledger)
    with pytest.raises(InvalidBlock, match="state root"):
        chain.ledger.validate_block(block)
    with pytest.raises(StateRootMismatch):
        chain.ledger.apply_block(block, b"cert")
    assert snapshot(chain.ledger) == before


def test_rebuild_detects_a_log_that_no_longer_gives_the_stored_roots(chain):
    _busy_history(chain)
    with chain.ledger.store.write() as txn:  # corrupt one stored root
        txn.put((3).to_bytes(8, "big"), b"\x00" * 32, db=chain.ledger.store.dbs["roots"])
    tip = chain.ledger.tip
    with pytest.raises(StateRootMismatch, match="height 3"):
        chain.ledger.rebuild()
    assert chain.ledger.tip == tip  # the failed replay's own tip is not kept


# --- the root covers every receipt and event -----------------------------------------------------


def _stored_events(ledger: Ledger, height: int) -> list[tuple[bytes, bytes]]:
    with ledger.store.read() as txn:
        return list(ledger.store.iter_prefix(txn, "events", height.to_bytes(8, "big")))


def _root_from_stored_results(ledger: Ledger) -> bytes:
    """The tip's root recomputed from the tip's accumulator and the receipts and events stored."""
    tip = ledger.tip
    with ledger.store.read() as txn:
        return state_root(tip.height, tip.accumulator, results_hash(ledger.store.stored_results(txn, tip.height)))


def _rewrite_event(ledger: Ledger, key: bytes, **changes) -> None:
    """Change one stored event in place, as a faulty disk or a hand at the database would."""
    with ledger.store.write() as txn:
        db = ledger.store.dbs["events"]
        event = msgpack.unpackb(txn.get(key, db=db), raw=False)
        event.update(changes)
        txn.put(key, codec.pack_canonical(event), db=db)


def test_the_stored_receipts_and_events_give_the_certified_root(chain):
    _busy_history(chain)
    assert _stored_events(chain.ledger, chain.ledger.tip.height)  # the tip's block has events
    assert _root_from_stored_results(chain.ledger) == chain.ledger.tip.state_root


def test_changing_one_stored_event_changes_the_recomputed_root(chain):
    _busy_history(chain)
    key, raw = _stored_events(chain.ledger, chain.ledger.tip.height)[-1]
    _rewrite_event(chain.ledger, key, height=chain.ledger.tip.height + 1)
    assert _root_from_stored_results(chain.ledger) != chain.ledger.tip.state_root


def test_an_event_without_its_receipt_changes_the_recomputed_root(chain):
    _busy_history(chain)
    tip = chain.ledger.tip.height
    with chain.ledger.store.write() as txn:  # an extra event after the block's last transaction
        txn.put(event_key(tip, 99, 0), _stored_events(chain.ledger, tip)[0][1], db=chain.ledger.store.dbs["events"])
    assert _root_from_stored_results(chain.ledger) != chain.ledger.tip.state_root


def test_rebuild_detects_a_changed_event_and_writes_the_committed_one_back(chain, snapshot):
    _busy_history(chain)
    before = snapshot(chain.ledger)
    height = 3
    key, raw = _stored_events(chain.ledger, height)[0]
    _rewrite_event(chain.ledger, key, height=height + 7)
    assert snapshot(chain.ledger) != before

    report = chain.ledger.rebuild()
    assert report.repaired_heights == (height,)
    assert _stored_events(chain.ledger, height)[0] == (key, raw)
    assert snapshot(chain.ledger) == before
