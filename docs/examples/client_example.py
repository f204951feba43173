"""A broker's client of a secledger network, end to end; docs/CLIENT.md walks through it.

    python docs/examples/client_example.py RPC_URL ADMIN_KEY_FILE WORK_DIR

RPC_URL is any node of the network (http://127.0.0.1:26601/ for `make run`), ADMIN_KEY_FILE the
genesis administrator's key (`keys/admin.json` of `secledger testnet`), WORK_DIR a directory for
the key files this example creates (kept, so a second run reuses them). It needs a fresh chain:
it creates the token ACME. Every step prints one line; tests/e2e/test_client_example.py runs it
against a network of `secledger` processes and checks them.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ledger import decode_transaction
from ledger.client import Action, Signer, new_key
from node.rpc.client import RpcClient, RpcError
from node.setup.keys import load_key, save_key

TOKEN = "ACME"
FAR_FUTURE_S = 4_102_444_800  # 2100-01-01: claim expiries
BIG = 2**60 + 1  # an amount a double cannot hold: it travels as the string "1152921504606846977"


# --- keys and signers -----------------------------------------------------------------------------------


def key_file(work: Path, name: str) -> Any:
    """The key in WORK_DIR/<name>.json, made on first use (mode 0600, never overwritten)."""
    path = work / f"{name}.json"
    if not path.exists():
        save_key(path, new_key())
    return load_key(path)


async def signer_for(node: RpcClient, key: Any, chain_id: str) -> Signer:
    """A Signer at the account's next nonce (the node counts its pending transactions too)."""
    answer = await node.call("account_nonce", address=bytes(key.verify_key).hex())
    return Signer(key, chain_id, answer["next_nonce"])  # a decimal string: Signer takes it as is


# --- submit and wait ------------------------------------------------------------------------------------


async def submit_and_wait(node: RpcClient, raw: bytes, timeout_ms: int = 30_000) -> dict[str, Any]:
    """Submit signed bytes and wait for the block. Raises RpcError if the node refuses them."""
    submitted = await node.call("tx_submit", tx=raw.hex())  # {"hash": ..., "status": "pending"}
    receipt = await node.call("tx_wait", hash=submitted["hash"], timeout_ms=timeout_ms)
    if receipt["status"] == "replaced":  # another transaction of this signer and nonce committed
        raise RuntimeError(f"{submitted['hash']} was replaced by {receipt['replaced_by']}")
    if receipt["status"] != "committed":  # "rejected": in a block, refused by a rule; nonce used
        raise RuntimeError(f"rejected in block {receipt['height']}: {receipt['code']} {receipt['reason']}")
    return receipt


# --- one transaction of every kind, signed offline ------------------------------------------------------


def one_of_each_kind(s: Signer, other: bytes) -> dict[str, bytes]:
    """Build and sign one transaction of every kind (docs/CLIENT.md lists them by family). Nothing
    is sent: this shows each builder, and that its body passes the ledger's checks."""
    h = b"\x07" * 32  # a document's content hash
    classes = [["ACME", 0, 10, False, None, True]]  # [token, seniority, preference, participating, cap, convertible]
    builders: dict[str, Callable[[], bytes]] = {
        # chain-wide roles (administrators)
        "role.grant": lambda: s.grant_role("claim_issuer", other),
        "role.revoke": lambda: s.revoke_role("claim_issuer", other),
        # identities and claims (claim issuers)
        "identity.register": lambda: s.register_identity("carol", [other]),
        "identity.add_wallet": lambda: s.add_wallet("carol", other),
        "claim.grant": lambda: s.grant_claim("carol", "country", FAR_FUTURE_S, "GB"),
        "claim.revoke": lambda: s.revoke_claim("carol", "country"),
        # tokens (issuers, owners, agents, holders)
        "token.create": lambda: s.create_token("BOND", "A bond", decimals=2, rules={"required_claims": ["kyc"]}),
        "token.set_agent": lambda: s.set_agent("BOND", other, ["freeze", "supply"]),
        "token.set_rules": lambda: s.set_rules("BOND", {"holders_max": 500, "supply_cap": BIG}),
        "token.set_name": lambda: s.set_name("BOND", "A bond, series 2"),
        "token.issue": lambda: s.issue("BOND", other, BIG),
        "token.redeem": lambda: s.redeem("BOND", other, 5),
        "token.transfer": lambda: s.transfer("BOND", other, 5),
        "token.force_transfer": lambda: s.force_transfer("BOND", s.address, other, 5),
        "token.freeze": lambda: s.freeze("BOND", other),
        "token.unfreeze": lambda: s.unfreeze("BOND", other),
        "token.freeze_partial": lambda: s.freeze_partial("BOND", other, 5),
        "token.unfreeze_partial": lambda: s.unfreeze_partial("BOND", other, 5),
        "token.pause": lambda: s.pause("BOND"),
        "token.unpause": lambda: s.unpause("BOND"),
        "token.recover": lambda: s.recover("BOND", other, s.address),
        # documents (token owners)
        "token.set_document": lambda: s.set_document("BOND", "prospectus", "https://example.com/p.pdf", h),
        "token.remove_document": lambda: s.remove_document("BOND", "prospectus"),
        # corporate actions (owners and corporate-actions agents; holders claim and vote)
        "distribution.declare": lambda: s.declare_distribution("C-1", "BOND", "USD", record_height=10, rate_num=3,
                                                               rate_den=2, expires_at=FAR_FUTURE_S),
        "distribution.claim": lambda: s.claim_distribution("C-1"),
        "distribution.pay": lambda: s.pay_distribution("C-1", [("carol", other)]),
        "distribution.reclaim": lambda: s.reclaim_distribution("C-1"),
        "liquidation.declare": lambda: s.declare_liquidation("L-1", "USD", amount=BIG, record_height=10,
                                                             expires_at=FAR_FUTURE_S, classes=classes),
        "ballot.create": lambda: s.create_ballot("AGM", "BOND", "Approve?", ["yes", "no"], record_height=10,
                                                 opens_at_height=11, closes_at_height=100),
        "ballot.vote": lambda: s.vote("AGM", 0),
        "ballot.tally": lambda: s.tally("AGM"),
        # consortium governance (members)
        "gov.propose": lambda: s.propose([Action.set_param("block_txs_max", 2000)], expires_at_height=1000),
        "gov.approve": lambda: s.approve(1),
        "gov.reject": lambda: s.reject(1),
        "gov.withdraw": lambda: s.withdraw(1),
        # settlement instructions (parties and venue operators)
        "settlement.create": lambda: s.create_instruction([("BOND", s.address, other, 5), ("USD", other, s.address, 500)],
                                                          expires_at=FAR_FUTURE_S),
        "settlement.affirm": lambda: s.affirm_instruction(1),
        "settlement.withdraw_affirmation": lambda: s.withdraw_affirmation(1),
        "settlement.reject": lambda: s.reject_instruction(1),
        "settlement.execute": lambda: s.execute_instruction(1),
        "settlement.expire": lambda: s.expire_instruction(1),
        # primary offerings (owners and supply agents; investors subscribe)
        "offering.open": lambda: s.open_offering("IPO", "BOND", "USD", price=100, raise_min=0, raise_max=BIG,
                                                 investor_min=100, investor_max=BIG, opens_at=0,
                                                 closes_at=FAR_FUTURE_S, cash_wallet=s.address),
        "offering.subscribe": lambda: s.subscribe("IPO", 1_000),
        "offering.withdraw": lambda: s.withdraw_subscription("IPO"),
        "offering.close": lambda: s.close_offering("IPO"),
        "offering.cancel": lambda: s.cancel_offering("IPO"),
    }
    return {kind: build() for kind, build in builders.items()}


# --- the walk-through -----------------------------------------------------------------------------------


async def run(url: str, admin_key_file: Path, work: Path) -> None:
    async with RpcClient(url) as node:
        status = await node.call("chain_status")
        chain_id = status["chain_id"]
        print(f"chain {chain_id} at height {status['height']}")

        keys = {name: key_file(work, name) for name in ("kyc", "issuer", "agent", "alice", "bob")}
        admin = await signer_for(node, load_key(admin_key_file), chain_id)
        kyc, issuer, agent, alice = [await signer_for(node, keys[n], chain_id) for n in ("kyc", "issuer", "agent",
                                                                                         "alice")]

        # Roles. On a chain whose genesis names consortium members, roles change by a proposal of
        # the members (here one member, threshold 1 of 1: it executes at once); otherwise an
        # administrator grants them.
        grants = [("claim_issuer", kyc.address), ("token_issuer", issuer.address)]
        if (await node.call("gov_members"))["members"]:
            top = (await node.call("chain_status"))["height"]
            receipt = await submit_and_wait(node, admin.propose([Action.grant_role(r, a) for r, a in grants],
                                                                expires_at_height=top + 100))
            proposal = next(e["data"]["proposal"] for e in receipt["events"] if e["kind"] == "gov.proposed")
            print(f"roles granted by proposal {proposal}: {(await node.call('gov_proposal', id=proposal))['status']}")
        else:
            for role, account in grants:
                await submit_and_wait(node, admin.grant_role(role, account))
            print("roles granted by the administrator")

        # Identities and claims: submitted back to back (nonces n, n+1, ...), waited for once.
        for name in ("alice", "bob"):
            wallet = bytes(keys[name].verify_key)
            await node.call("tx_submit", tx=kyc.register_identity(name, [wallet]).hex())
            await node.call("tx_submit", tx=kyc.grant_claim(name, "kyc", FAR_FUTURE_S).hex())
            await submit_and_wait(node, kyc.grant_claim(name, "country", FAR_FUTURE_S, "GB"))
        print("identities registered: alice, bob")

        # A token with rules and an agent; amounts as Python ints when signing, strings from the node.
        await submit_and_wait(node, issuer.create_token(TOKEN, "Acme Corp common", rules={"required_claims": ["kyc"]},
                                                        agents={agent.address: ["freeze", "supply"]}))
        issued = await submit_and_wait(node, agent.issue(TOKEN, alice.address, BIG))
        print(f"issued {issued['events'][0]['data']['amount']} {TOKEN} to alice at height {issued['height']}")
        balance = await node.call("token_balance", token=TOKEN, address=alice.address.hex())
        print(f"balance of alice: {balance['balance']} (exact: {int(balance['balance']) == BIG})")

        bob = bytes(keys["bob"].verify_key)
        first = await submit_and_wait(node, alice.transfer(TOKEN, bob, 250))
        print(f"transfer committed at height {first['height']}, nonce {first['nonce']}")

        # Errors: each is an RpcError with the JSON-RPC code, a message and data.
        stranger = bytes(new_key().verify_key)
        try:
            await node.call("tx_submit", tx=alice.transfer(TOKEN, stranger, 1).hex())
        except RpcError as error:  # -32000: the rules refuse it; its nonce was not used
            alice.nonce -= 1
            print(f"refused: {error.code} {error.data['reason_code']} {error.data['reason']}")
        reused = Signer(alice.key, chain_id, int(first["nonce"]))  # a nonce already used
        try:
            await node.call("tx_submit", tx=reused.transfer(TOKEN, bob, 1).hex())
        except RpcError as error:  # -32005: the mempool did not admit it
            print(f"mempool refused: {error.code} {error.data['reason'].split(':')[0]}")
        try:
            await node.call("compliance_check", token=TOKEN, sender=alice.address.hex(), receiver=bob.hex(), amount=5)
        except RpcError as error:  # -32602: an amount must be a decimal string
            print(f"invalid params: {error.code} {error.message}")
        check = await node.call("compliance_check", token=TOKEN, sender=alice.address.hex(), receiver=bob.hex(),
                                amount="5")
        print(f"compliance check: {check['ok']} {check['code']} {check['reason']}")

        # Subscriptions, resumable: from the first transfer's height, the replay, then live ones.
        transfers = {"token": TOKEN, "kind": "token.transferred"}
        async with node.subscribe("events", transfers, from_height=first["height"]) as events:
            replayed = await asyncio.wait_for(events.__anext__(), 30)
            print(f"replayed: {replayed['data']['amount']} at height {replayed['height']}")
            await node.call("tx_submit", tx=alice.transfer(TOKEN, bob, 100).hex())
            live = await asyncio.wait_for(events.__anext__(), 30)
            print(f"live: {live['data']['amount']} at height {live['height']}")
        # after a disconnect, subscribe again with from_height=live["height"] + 1: no gap, no repeat

        # Pagination: `next` is the `after` of the next page, null on the last one.
        after, holders = None, []
        while True:
            page = await node.call("token_holders", token=TOKEN, limit=1, **({"after": after} if after else {}))
            holders += [f"{h['identity']}={h['balance']}" for h in page["holders"]]
            if page["next"] is None:
                break
            after = page["next"]
        print(f"holders: {', '.join(holders)}")
        cursor, pages, count = None, 0, 0
        while True:
            page = await node.call("events_query", token=TOKEN, limit=2, **({"after": cursor} if cursor else {}))
            pages, count = pages + 1, count + len(page["events"])
            if page["next"] is None:
                break
            cursor = page["next"]
        print(f"events of {TOKEN}: {count} in {pages} pages")

        # A decoded block: each transaction with its kind, body (amounts as strings) and receipt.
        block = await node.call("block_get", height=first["height"])
        tx = next(t for t in block["txs"] if t["hash"] == first["hash"])
        print(f"block {block['height']}: {tx['kind']} amount {tx['body']['amount']} receipt {tx['receipt']['code']}")

        built = one_of_each_kind(Signer(keys["issuer"], chain_id, 0), bob)
        decoded = {kind: decode_transaction(raw, chain_id=chain_id).kind for kind, raw in built.items()}
        assert all(kind == decoded[kind] for kind in built)
        print(f"signed one transaction of each of {len(built)} kinds")
    print("done")


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    url, admin_key_file, work = argv
    Path(work).mkdir(parents=True, exist_ok=True)
    asyncio.run(run(url, Path(admin_key_file), Path(work)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
