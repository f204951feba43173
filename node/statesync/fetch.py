"""The joining side: a node with an empty store and `[statesync] enabled = true` asks its peers for
snapshots, fetches and verifies one, installs it, and hands over to block sync.

Peers are tried most advanced first (by their `status` height). From a peer, the newest snapshot
it lists whose block h + 1 it already holds is taken: its manifest is checked (chain, height), then
blocks h and h + 1 with h + 1's certificate are fetched (`get_blocks`), then every chunk, each
checked against its manifest hash as it arrives, and the whole verified (node/statesync/verify.py).
A refusal is logged with its named reason and the next peer is tried; a peer that is silent for
`RESPONSE_TIMEOUT_S` is skipped. Rounds repeat until one snapshot installs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from ledger import Ledger
from node import wire

from .install import install
from .snapshot import Manifest, SnapshotError
from .verify import SnapshotRefused, check_chunk, check_manifest, verify

log = logging.getLogger("secledger.statesync")

RESPONSE_TIMEOUT_S: float = 5.0
RETRY_S: float = 1.0


class StateSyncer:
    def __init__(self, *, ledger: Ledger, send: Callable[[bytes, bytes], bool],
                 on_installed: Callable[[dict[bytes, wire.Status]], None]) -> None:
        self.ledger = ledger
        self._send = send
        self._on_installed = on_installed
        self.statuses: dict[bytes, wire.Status] = {}
        self.refusals: list[tuple[bytes, str]] = []  # (peer, reason), for tests and metrics
        self.installed_height: int | None = None
        self._waiting: dict[tuple[bytes, Any], asyncio.Future[Any]] = {}
        self._task: asyncio.Task[None] | None = None
        self.stopped = False

    @property
    def active(self) -> bool:
        return self.installed_height is None and not self.stopped

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="state-sync")

    def stop(self) -> None:
        self.stopped = True
        if self._task is not None:
            self._task.cancel()

    # --- inputs (from the node's peer messages) ------------------------------------------------------

    def on_status(self, peer: bytes, status: wire.Status) -> None:
        self.statuses[peer] = status

    def on_peer_down(self, peer: bytes) -> None:
        self.statuses.pop(peer, None)
        for (who, _), future in list(self._waiting.items()):
            if who == peer and not future.done():
                future.cancel()

    def on_answer(self, peer: bytes, message: wire.Snapshots | wire.Blocks | wire.SnapshotChunk) -> None:
        match message:
            case wire.Snapshots():
                key: Any = "snapshots"
            case wire.Blocks():
                key = "blocks"
            case wire.SnapshotChunk(height, index, _):
                key = ("chunk", height, index)
        future = self._waiting.get((peer, key))
        if future is not None and not future.done():
            future.set_result(message)

    # --- the loop --------------------------------------------------------------------------------------

    async def _ask(self, peer: bytes, key: Any, message: wire.WireMessage) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting[(peer, key)] = future
        try:
            if not self._send(peer, wire.encode(message)):
                raise TimeoutError
            return await asyncio.wait_for(future, RESPONSE_TIMEOUT_S)
        finally:
            self._waiting.pop((peer, key), None)

    async def _run(self) -> None:
        try:
            while self.active:
                peers = sorted(self.statuses.items(), key=lambda item: -item[1].height)
                for peer, status in peers:
                    if await self._try(peer, status.height):
                        self._on_installed(dict(self.statuses))
                        return
                await asyncio.sleep(RETRY_S)
        except asyncio.CancelledError:
            raise
        except Exception:  # a bug: say so loudly, but never kill the node's loop
            log.exception("state sync failed")

    async def _try(self, peer: bytes, peer_height: int) -> bool:
        name = peer.hex()[:12]
        try:
            listed: wire.Snapshots = await self._ask(peer, "snapshots", wire.GetSnapshots())
            manifests = []
            for height, data in listed.snapshots:
                manifest = Manifest.decode(data)
                if manifest.point.height != height:
                    raise SnapshotRefused("manifest", f"listed at {height}, the manifest says {manifest.point.height}")
                check_manifest(self.ledger, manifest)
                if height + 1 <= peer_height:
                    manifests.append(manifest)
            if not manifests:
                log.info("state sync: peer %s has no snapshot with its next block yet", name)
                return False
            manifest = max(manifests, key=lambda m: m.point.height)
            height = manifest.point.height
            blocks: wire.Blocks = await self._ask(peer, "blocks", wire.GetBlocks(height, 2))
            if len(blocks.blocks) < 2:
                log.info("state sync: peer %s did not send blocks %d and %d", name, height, height + 1)
                return False
            chunks = []
            for index in range(len(manifest.chunk_hashes)):
                answer: wire.SnapshotChunk = await self._ask(peer, ("chunk", height, index),
                                                             wire.GetSnapshotChunk(height, index))
                check_chunk(manifest, index, answer.chunk)
                chunks.append(answer.chunk)
            verified = verify(self.ledger, manifest, chunks, block=blocks.blocks[0][0],
                              next_block=blocks.blocks[1][0], next_certificate=blocks.blocks[1][1])
        except SnapshotError as exc:
            return self._refused(peer, "manifest", str(exc))
        except SnapshotRefused as exc:
            return self._refused(peer, exc.reason, exc.detail)
        except TimeoutError:
            log.info("state sync: peer %s did not answer in %.0f s", name, RESPONSE_TIMEOUT_S)
            return False
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if self.stopped or (task is not None and task.cancelling()):
                raise
            return False  # the peer went away
        self.installed_height = install(self.ledger, verified).height
        return True

    def _refused(self, peer: bytes, reason: str, detail: str) -> bool:
        self.refusals.append((peer, reason))
        log.warning("state sync: refused the snapshot of peer %s (%s): %s", peer.hex()[:12], reason, detail)
        return False
