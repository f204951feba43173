"""Block sync: a node that is behind fetches certified blocks from peers, verifies, applies.

Peers announce their height in `status` messages (on connect, after each commit, periodically).
When a peer is ahead, one task asks the most advanced peer for the next blocks, checks each commit
certificate against the block's hash and the validator set of its height (which this node's own
chain fixes: node/validator/validator_sets.py), applies the block through the ledger (which checks the chain,
the validators hashes and the state root), and repeats until caught up; then the driver moves
consensus to the new height. Validators and observers use the same code; no restart is
ever needed to catch up.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from consensus.certificate import CommitCertificate
from consensus.errors import InvalidCertificate, MalformedMessage
from consensus.validators import ValidatorSet
from ledger import Block, BlockResult, InvalidBlock, Ledger, NotFound, queries

from ..p2p import wire

log = logging.getLogger("secledger.sync")

#: Blocks asked for in one request.
REQUEST_BLOCKS: int = 32
#: How long to wait for a peer's answer before asking another.
RESPONSE_TIMEOUT_S: float = 5.0


class BlockSync:
    def __init__(
        self,
        *,
        ledger: Ledger,
        validators_at: Callable[[int], ValidatorSet],
        send: Callable[[bytes, bytes], bool],
        apply: Callable[[Block, bytes], BlockResult | None],
        on_caught_up: Callable[[], None],
        response_bytes_max: int,
    ) -> None:
        self.ledger = ledger
        self.validators_at = validators_at
        self._send = send
        self._apply = apply
        self._on_caught_up = on_caught_up
        self.response_bytes_max = response_bytes_max
        self.peer_heights: dict[bytes, int] = {}
        self._task: asyncio.Task[None] | None = None
        self._waiting: tuple[bytes, asyncio.Future[wire.Blocks]] | None = None
        self.blocks_synced = 0
        self.rejected_responses = 0
        self.stopped = False

    @property
    def syncing(self) -> bool:
        return self._task is not None and not self._task.done()

    def stop(self) -> None:
        self.stopped = True
        if self._task is not None:
            self._task.cancel()

    # --- inputs ------------------------------------------------------------------------------------

    def on_status(self, peer: bytes, status: wire.Status) -> None:
        self.peer_heights[peer] = status.height
        tip = self.ledger.tip
        if status.height <= tip.height and status.height >= 1:
            if status.height == tip.height:
                ours = tip.state_root  # the usual case, after each commit: no store read
            else:
                try:
                    ours = queries.state_root_at(self.ledger, status.height)
                except NotFound:
                    ours = None
            if ours is not None and ours != status.state_root:
                log.error("peer %s reports state root %s at height %d, ours is %s",
                          peer.hex()[:12], status.state_root.hex(), status.height, ours.hex())
        if status.height > tip.height:
            self.kick()

    def on_peer_down(self, peer: bytes) -> None:
        self.peer_heights.pop(peer, None)
        if self._waiting is not None and self._waiting[0] == peer and not self._waiting[1].done():
            self._waiting[1].cancel()

    def on_blocks(self, peer: bytes, message: wire.Blocks) -> None:
        if self._waiting is not None and self._waiting[0] == peer and not self._waiting[1].done():
            self._waiting[1].set_result(message)

    def serve(self, request: wire.GetBlocks) -> wire.Blocks:
        """Answer a peer's `get_blocks` from our store, within the response size bound."""
        pairs: list[tuple[bytes, bytes]] = []
        size = 0
        for height in range(request.from_height, request.from_height + request.count):
            try:
                block, cert = queries.block(self.ledger, height)
            except NotFound:
                break
            if pairs and size + len(block) + len(cert) > self.response_bytes_max:
                break
            pairs.append((block, cert))
            size += len(block) + len(cert)
        return wire.Blocks(tuple(pairs))

    def kick(self) -> None:
        if not self.syncing and not self.stopped:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="block-sync")

    # --- the sync loop -----------------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            while not self.stopped:
                tip = self.ledger.tip.height
                ahead = sorted(((h, k) for k, h in self.peer_heights.items() if h > tip), reverse=True)
                if not ahead:
                    break
                progressed = False
                for _, peer in ahead:
                    if await self._fetch_from(peer):
                        progressed = True
                        break
                if not progressed:
                    await asyncio.sleep(RESPONSE_TIMEOUT_S / 5)
            if not self.stopped:
                self._on_caught_up()
        except asyncio.CancelledError:
            raise
        except Exception:  # a bug: say so loudly, but never kill the node's loop
            log.exception("block sync failed")

    async def _fetch_from(self, peer: bytes) -> bool:
        """Ask `peer` for the next blocks and apply them; True if at least one applied."""
        start = self.ledger.tip.height + 1
        future: asyncio.Future[wire.Blocks] = asyncio.get_running_loop().create_future()
        self._waiting = (peer, future)
        if not self._send(peer, wire.encode(wire.GetBlocks(start, REQUEST_BLOCKS))):
            return False
        try:
            answer = await asyncio.wait_for(future, RESPONSE_TIMEOUT_S)
        except TimeoutError:
            return False
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if self.stopped or (task is not None and task.cancelling()):
                raise  # this task is being cancelled (shutdown): never swallow that
            return False  # only the wait for this peer was cancelled: it went away
        finally:
            self._waiting = None
        applied = 0
        for block_bytes, cert_bytes in answer.blocks:
            outcome = self._take(peer, block_bytes, cert_bytes)
            if outcome == "rejected":
                break
            applied += outcome == "applied"
        self.blocks_synced += applied
        return applied > 0

    def _take(self, peer: bytes, block_bytes: bytes, cert_bytes: bytes) -> str:
        """Verify one certified block (decoded once) and apply it: "applied", "known" (consensus
        committed it while the answer was on its way) or "rejected"."""
        try:
            block = Block.decode(block_bytes)
            certificate = CommitCertificate.decode(cert_bytes)
            if block.height > self.ledger.tip.height + 1:
                raise InvalidBlock(f"expected height {self.ledger.tip.height + 1}, got {block.height}")
            # The set of every height up to the next is fixed by blocks this node verified itself
            # (a change decided at H takes effect at H + 2): no peer's word goes into whom we believe.
            certificate.verify(self.ledger.chain_id, self.validators_at(block.height), height=block.height,
                               block_id=block.hash)
            if block.height <= self.ledger.tip.height:
                if queries.block(self.ledger, block.height)[0] != block_bytes:
                    # Two certified blocks at one height would break agreement: say so loudly.
                    log.critical("peer %s holds another certified block at height %d than this node",
                                 peer.hex()[:12], block.height)
                return "known"
        except (InvalidBlock, InvalidCertificate, MalformedMessage) as exc:
            self.rejected_responses += 1
            log.warning("peer %s sent a block we cannot verify: %s", peer.hex()[:12], exc)
            return "rejected"
        return "applied" if self._apply(block, cert_bytes) is not None else "rejected"
