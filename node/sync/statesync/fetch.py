"""The joining side: a node with an empty store and `[statesync] enabled = true` asks its peers for
snapshots, fetches and verifies one, installs it, and hands over to block sync.

Peers are tried most advanced first (by their `status` height). From a peer, the newest snapshot
it lists whose block h + 1 it already holds is taken: its manifest is checked (chain, height), then
blocks h and h + 1 with h + 1's certificate are fetched (`get_blocks`), then every chunk, each
checked against its manifest hash as it arrives, and the whole verified (node/sync/statesync/verify.py).
A refusal is logged with its named reason and the next peer is tried; a peer that is silent for
`RESPONSE_TIMEOUT_S` is skipped. Rounds repeat until one snapshot installs.

With a trust root (`[statesync] trust_height` and `trust_hash`), before any chunk is fetched the
peer's headers are walked from the trusted one to h + 1 (`get_headers`, at most `wire.HEADERS_MAX`
a message; `get_validators` for each set not known yet by its hash), each step checked in
node/sync/statesync/verify.py; block h + 1 must then be the header the walk ends on. A peer below the
trusted height, or without the headers or sets asked for (a state-synced peer holds no headers
below its snapshot), is skipped, not refused.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from typing import Any

from consensus.validators import ValidatorSet
from ledger import Block, Ledger
from node.p2p import wire

from .install import install
from .snapshot import Manifest, SnapshotError
from .verify import (
    SnapshotRefused,
    TrustRoot,
    check_chunk,
    check_header_certificate,
    check_manifest,
    check_next_header,
    check_parent,
    check_trusted_header,
    check_validator_set,
    decode_header,
    verify,
)

log = logging.getLogger("secledger.statesync")

RESPONSE_TIMEOUT_S: float = 5.0
RETRY_S: float = 1.0
#: Validator sets kept once verified against a header's hash (a set is fetched once per change).
SETS_CACHED_MAX: int = 64


class _Unserved(Exception):
    """The peer does not hold what the trust chain asks of it: try another peer (no refusal)."""


class StateSyncer:
    def __init__(self, *, ledger: Ledger, send: Callable[[bytes, bytes], bool],
                 on_installed: Callable[[dict[bytes, wire.Status]], None],
                 trust: TrustRoot | None = None) -> None:
        self.ledger = ledger
        self.trust = trust
        self._sets: dict[bytes, ValidatorSet] = {}  # verified sets by their validators hash
        self._root: Block | None = None  # the trusted header, once a peer served it with the trusted hash
        self._highest: Block | None = None  # the highest header verified forward from it
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

    def on_answer(self, peer: bytes, message: wire.Snapshots | wire.Blocks | wire.SnapshotChunk | wire.Headers
                  | wire.Validators) -> None:
        match message:
            case wire.Snapshots():
                key: Any = "snapshots"
            case wire.Blocks():
                key = "blocks"
            case wire.SnapshotChunk(height, index, _):
                key = ("chunk", height, index)
            case wire.Headers():
                key = "headers"
            case wire.Validators(height, _):
                key = ("validators", height)
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
            trusted_hash = None
            if self.trust is not None:
                if self.trust.height > peer_height:
                    log.info("state sync: peer %s is at height %d, below the trusted height %d", name,
                             peer_height, self.trust.height)
                    return False
                trusted_hash = await self._trust_chain(peer, height + 1)
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
                              next_block=blocks.blocks[1][0], next_certificate=blocks.blocks[1][1],
                              trusted_hash=trusted_hash)
        except _Unserved as exc:
            log.info("state sync: peer %s cannot serve the trust chain: %s", name, exc)
            return False
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

    # --- the trust chain (node/sync/statesync/verify.py says what each step checks) ---------------------------

    async def _trust_chain(self, peer: bytes, target: int) -> bytes:
        """The hash of header `target` (h + 1), verified from the trust root through the peer's
        headers; raises `SnapshotRefused` or `_Unserved`. Verified headers are trusted whoever sent
        them: the trusted header and the highest one verified forward are kept for the next try."""
        assert self.trust is not None
        root = self._root
        if root is None:
            answer: wire.Headers = await self._ask(peer, "headers", wire.GetHeaders(self.trust.height, 1))
            if not answer.headers:
                raise _Unserved(f"no header at the trusted height {self.trust.height}")
            root = self._root = check_trusted_header(self.ledger, self.trust, answer.headers[0][0])
        if target == root.height:
            return root.hash
        if target > root.height:  # forward: every header certified by the set its parent named
            trusted = self._highest if self._highest is not None and self._highest.height <= target else root
            start = trusted.height
            async with aclosing(self._headers(peer, trusted.height + 1, target)) as headers:
                async for header, certificate in headers:
                    check_next_header(trusted, header)
                    validator_set = await self._validator_set(peer, header)
                    check_header_certificate(self.ledger, header, certificate, validator_set)
                    trusted = header
                    if self._highest is None or header.height > self._highest.height:
                        self._highest = header
            log.info("state sync: verified headers %d to %d from the trusted height %d", start + 1, target,
                     root.height)
            return trusted.hash
        # backward: headers target .. T - 1, each the parent its child names, up to the trusted one
        first: Block | None = None
        below: Block | None = None
        async with aclosing(self._headers(peer, target, root.height - 1)) as headers:
            async for header, _ in headers:
                if below is None:
                    first = header
                else:
                    check_parent(header, below)
                below = header
        assert first is not None and below is not None
        check_parent(root, below)
        log.info("state sync: verified headers %d to %d back from the trusted height %d", target, root.height - 1,
                 root.height)
        return first.hash

    async def _headers(self, peer: bytes, start: int, end: int) -> AsyncIterator[tuple[Block, bytes]]:
        """Headers start .. end (inclusive) of `peer`, in order, at most `wire.HEADERS_MAX` a request."""
        height = start
        while height <= end:
            answer: wire.Headers = await self._ask(peer, "headers",
                                                   wire.GetHeaders(height, min(wire.HEADERS_MAX, end - height + 1)))
            if not answer.headers:
                raise _Unserved(f"no header at height {height}")
            for data, certificate in answer.headers[:end - height + 1]:
                yield decode_header(self.ledger, data, height), certificate
                height += 1

    async def _validator_set(self, peer: bytes, header: Block) -> ValidatorSet:
        """The set of the header's height: known by its hash, or fetched and checked against it."""
        expected = header.header.validators_hash
        known = self._sets.get(expected)
        if known is not None:
            return known
        answer: wire.Validators = await self._ask(peer, ("validators", header.height),
                                                  wire.GetValidators(header.height))
        if not answer.validators:
            raise _Unserved(f"no validator set of height {header.height}")
        validator_set = check_validator_set(header.height, answer.validators, expected)
        self._sets[expected] = validator_set
        while len(self._sets) > SETS_CACHED_MAX:
            del self._sets[next(iter(self._sets))]
        return validator_set

    def _refused(self, peer: bytes, reason: str, detail: str) -> bool:
        self.refusals.append((peer, reason))
        log.warning("state sync: refused the snapshot of peer %s (%s): %s", peer.hex()[:12], reason, detail)
        return False
