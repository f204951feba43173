"""Hostile peers against a running network (four validators and an observer, in one process on
loopback ports chosen at run time): each is cut off and logged, and consensus goes on.

- a stranger whose node key no genesis or config lists;
- a raw TCP client that sends garbage, and one that connects and sends nothing;
- an insider (the key of a listed observer that is not running) whose link a man in the middle
  tampers with: a replayed frame, a flipped bit, a frame over the size limit.
"""

from __future__ import annotations

import asyncio
import logging
import os

import nacl.signing
import pytest

from node.p2p import PeerAddress, PeerManager
from node.p2p.secret_connection import SecretConnection, handshake
from node.setup.keys import load_key
from node.testing import LocalNetwork

pytestmark = pytest.mark.asyncio

VALIDATORS = ["validator-0", "validator-1", "validator-2", "validator-3"]
#: How long a cut may take: the handshake timeout (5 s) plus slack for a loaded machine.
CUT_BOUND_S = 12.0


@pytest.fixture
async def network(tmp_path):
    """Four validators and observer-0 running; observer-1 is in the genesis but never started."""
    net = LocalNetwork(tmp_path / "net", observers=2)
    for name in (*VALIDATORS, "observer-0"):
        await net.start(name)
    try:
        yield net
    finally:
        await net.stop()


async def _cut_within(reader: asyncio.StreamReader, bound_s: float) -> bool:
    """True once the far end closes the connection (EOF or reset) within `bound_s`."""
    try:
        async with asyncio.timeout(bound_s):
            while await reader.read(1 << 16):
                pass
    except TimeoutError:
        return False
    except (ConnectionError, OSError):
        pass
    return True


async def _insider(
    port: int, key: nacl.signing.SigningKey, validator_key: bytes, network_id: bytes
) -> tuple[SecretConnection, asyncio.StreamReader, asyncio.StreamWriter, list[bytes]]:
    """An authenticated link as a listed peer; every byte it writes is also kept in `written`."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    conn = await handshake(reader, writer, key, lambda k: k == validator_key, network_id=network_id)
    written: list[bytes] = []
    original = writer.write

    def keep(data: bytes) -> None:
        written.append(bytes(data))
        original(data)

    writer.write = keep  # type: ignore[method-assign]
    return conn, reader, writer, written


async def _heights(net: LocalNetwork) -> dict[str, int]:
    return {n: net.nodes[n].ledger.tip.height for n in VALIDATORS}


async def test_hostile_peers_are_cut_and_logged_while_consensus_goes_on(network, caplog):
    caplog.set_level(logging.INFO, logger="node")
    net = network
    await net.wait_for_height(2, names=VALIDATORS, timeout_s=30)
    target = net.nodes["validator-0"]
    port = target.peers.listen_port
    validator_key = target.peers.node_key
    before = await _heights(net)
    stats_before = (target.peers.stats.refused_unknown, target.peers.stats.handshake_failures)

    # a stranger with an unknown key, dialling the way a real peer would
    stranger = PeerManager(
        nacl.signing.SigningKey.generate(),
        allowed_keys=[validator_key],
        on_message=lambda peer, data: asyncio.sleep(0),
        persistent_peers=[PeerAddress(validator_key, "127.0.0.1", port)],
        network_id=target.peers.network_id,  # the same chain: refused for its key alone
    )
    await stranger.start()
    try:
        async with asyncio.timeout(CUT_BOUND_S):
            while target.peers.stats.refused_unknown == stats_before[0]:
                await asyncio.sleep(0.05)
        assert stranger.node_key not in target.peers.connected_peers()
    finally:
        await stranger.stop()

    # raw TCP: garbage, and silence
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(os.urandom(4096))
    assert await _cut_within(reader, CUT_BOUND_S), "a peer sending garbage was not cut"
    writer.close()
    silent_reader, silent_writer = await asyncio.open_connection("127.0.0.1", port)
    assert await _cut_within(silent_reader, CUT_BOUND_S), "a peer sending nothing was not cut"
    silent_writer.close()
    assert target.peers.stats.handshake_failures >= stats_before[1] + 2

    # an insider's link, tampered with: replayed frame, flipped bit, frame over the limit
    insider_key = load_key(net.directory / "keys" / "observer-1.node.json")
    for attack in ("replay", "flip", "oversize"):
        conn, reader, writer, written = await _insider(
            port, insider_key, validator_key, target.peers.network_id
        )
        await conn.send(b"\x01")  # a keepalive: a valid frame, so the link is up
        frame = written[-1]
        if attack == "replay":
            writer.write(frame)
        elif attack == "flip":
            writer.write = written.append  # type: ignore[method-assign] - seal the next frame, hold it
            conn._write_frame(b"\x01")
            del writer.write
            sealed = written.pop()
            writer.write(sealed[:-1] + bytes([sealed[-1] ^ 1]))  # its tag no longer authenticates
        else:
            writer.write((1 << 30).to_bytes(4, "big") + b"\x00" * 1024)
        assert await _cut_within(reader, CUT_BOUND_S), f"an insider's {attack}ed frame did not cut the link"
        conn.close()

    # consensus went on, and every honest link is (back) up
    await net.wait_for_height(max(before.values()) + 3, names=VALIDATORS, timeout_s=30)
    for name in VALIDATORS:
        others = {net.nodes[o].peers.node_key for o in VALIDATORS if o != name}
        assert others <= set(net.nodes[name].peers.connected_peers()), name
    logged = "\n".join(f"{r.getMessage()} {getattr(r, 'detail', '')}" for r in caplog.records)
    assert "refused unknown peer" in logged
    # The garbage and the silent socket were counted by reason; the log hears of refusals at most
    # once per interval (the first at once, the rest in a summary), not once per connection.
    refused = target.peers.stats.inbound_refused
    assert refused["failed"] + refused["timed_out"] >= 2
    assert len([r for r in caplog.records if r.getMessage().startswith("p2p inbound refus")]) <= 2
    assert "failed authentication" in logged  # the replayed and the flipped frame
    assert "too large" in logged.lower() or "over" in logged.lower()
