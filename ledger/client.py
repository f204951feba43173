"""Building and signing transactions, for the CLI, tests and any client program.

A `Signer` holds a key and the next nonce; each method builds one kind of transaction, signs it and
returns its wire bytes, advancing the nonce. Bodies are checked exactly as the ledger will decode
them, so a malformed transaction fails here, before it is sent. `Action` builds the actions of a
governance proposal (`Signer.propose`).
"""

from __future__ import annotations

from typing import Any

from nacl.signing import SigningKey

from .tx import sign_transaction


def new_key() -> SigningKey:
    return SigningKey.generate()


class Signer:
    """One account's key and nonce counter. Not thread-safe; one per sending task."""

    def __init__(self, key: SigningKey, chain_id: str, nonce: int | str = 0) -> None:
        """`nonce` may be given as the node's `account_nonce` sends it: a decimal string."""
        self.key = key
        self.chain_id = chain_id
        self.nonce = int(nonce)

    @property
    def address(self) -> bytes:
        return bytes(self.key.verify_key)

    def sign(self, kind: str, body: dict[str, Any]) -> bytes:
        raw = sign_transaction(self.key, chain_id=self.chain_id, nonce=self.nonce, kind=kind, body=body)
        self.nonce += 1
        return raw

    # chain-wide roles
    def grant_role(self, role: str, account: bytes) -> bytes:
        return self.sign("role.grant", {"role": role, "account": account})

    def revoke_role(self, role: str, account: bytes) -> bytes:
        return self.sign("role.revoke", {"role": role, "account": account})

    # identities and claims
    def register_identity(self, identity: str, wallets: list[bytes]) -> bytes:
        return self.sign("identity.register", {"identity": identity, "wallets": sorted(wallets)})

    def add_wallet(self, identity: str, wallet: bytes) -> bytes:
        return self.sign("identity.add_wallet", {"identity": identity, "wallet": wallet})

    def grant_claim(self, identity: str, topic: str, expires_at: int, value: str = "") -> bytes:
        return self.sign("claim.grant", {"identity": identity, "topic": topic, "value": value,
                                         "expires_at": expires_at})

    def revoke_claim(self, identity: str, topic: str) -> bytes:
        return self.sign("claim.revoke", {"identity": identity, "topic": topic})

    # tokens
    def create_token(self, symbol: str, name: str, *, decimals: int = 0, paused: bool = False,
                     rules: dict[str, Any] | None = None,
                     agents: dict[bytes, list[str]] | None = None) -> bytes:
        agent_list = [[address, sorted(roles)] for address, roles in sorted((agents or {}).items())]
        return self.sign("token.create", {"symbol": symbol, "name": name, "decimals": decimals,
                                          "paused": paused, "rules": rules or {}, "agents": agent_list})

    def set_agent(self, token: str, agent: bytes, roles: list[str]) -> bytes:
        return self.sign("token.set_agent", {"token": token, "agent": agent, "roles": sorted(roles)})

    def set_rules(self, token: str, rules: dict[str, Any]) -> bytes:
        return self.sign("token.set_rules", {"token": token, "rules": rules})

    def set_name(self, token: str, name: str) -> bytes:
        return self.sign("token.set_name", {"token": token, "name": name})

    def issue(self, token: str, to: bytes, amount: int) -> bytes:
        return self.sign("token.issue", {"token": token, "to": to, "amount": amount})

    def redeem(self, token: str, wallet: bytes, amount: int) -> bytes:
        return self.sign("token.redeem", {"token": token, "from": wallet, "amount": amount})

    def transfer(self, token: str, to: bytes, amount: int) -> bytes:
        return self.sign("token.transfer", {"token": token, "to": to, "amount": amount})

    def force_transfer(self, token: str, sender: bytes, to: bytes, amount: int) -> bytes:
        return self.sign("token.force_transfer", {"token": token, "from": sender, "to": to, "amount": amount})

    def freeze(self, token: str, address: bytes) -> bytes:
        return self.sign("token.freeze", {"token": token, "address": address})

    def unfreeze(self, token: str, address: bytes) -> bytes:
        return self.sign("token.unfreeze", {"token": token, "address": address})

    def freeze_partial(self, token: str, address: bytes, amount: int) -> bytes:
        return self.sign("token.freeze_partial", {"token": token, "address": address, "amount": amount})

    def unfreeze_partial(self, token: str, address: bytes, amount: int) -> bytes:
        return self.sign("token.unfreeze_partial", {"token": token, "address": address, "amount": amount})

    def pause(self, token: str) -> bytes:
        return self.sign("token.pause", {"token": token})

    def unpause(self, token: str) -> bytes:
        return self.sign("token.unpause", {"token": token})

    def recover(self, token: str, lost_wallet: bytes, new_wallet: bytes) -> bytes:
        return self.sign("token.recover", {"token": token, "lost_wallet": lost_wallet, "new_wallet": new_wallet})

    # documents
    def set_document(self, token: str, name: str, uri: str, content_hash: bytes) -> bytes:
        return self.sign("token.set_document", {"token": token, "name": name, "uri": uri, "hash": content_hash})

    def remove_document(self, token: str, name: str) -> bytes:
        return self.sign("token.remove_document", {"token": token, "name": name})

    # corporate actions
    def declare_distribution(self, action_id: str, token: str, payment_token: str, *, record_height: int,
                             rate_num: int, rate_den: int, expires_at: int) -> bytes:
        return self.sign("distribution.declare", {
            "id": action_id, "token": token, "payment_token": payment_token, "record_height": record_height,
            "rate_num": rate_num, "rate_den": rate_den, "expires_at": expires_at})

    def claim_distribution(self, action_id: str) -> bytes:
        return self.sign("distribution.claim", {"id": action_id})

    def pay_distribution(self, action_id: str, payments: list[tuple[str, bytes]]) -> bytes:
        return self.sign("distribution.pay", {"id": action_id, "payments": [[i, w] for i, w in payments]})

    def reclaim_distribution(self, action_id: str) -> bytes:
        return self.sign("distribution.reclaim", {"id": action_id})

    def declare_liquidation(self, action_id: str, payment_token: str, *, amount: int, record_height: int,
                            expires_at: int, classes: list[list[Any]]) -> bytes:
        """`classes`: [token, seniority, preference_per_unit, participating, cap_per_unit or None, convertible]."""
        return self.sign("liquidation.declare", {
            "id": action_id, "payment_token": payment_token, "amount": amount, "record_height": record_height,
            "expires_at": expires_at, "classes": classes})

    def create_ballot(self, action_id: str, token: str, question: str, options: list[str], *, record_height: int,
                      opens_at_height: int, closes_at_height: int) -> bytes:
        return self.sign("ballot.create", {
            "id": action_id, "token": token, "question": question, "options": options,
            "record_height": record_height, "opens_at_height": opens_at_height,
            "closes_at_height": closes_at_height})

    def vote(self, action_id: str, option: int) -> bytes:
        return self.sign("ballot.vote", {"id": action_id, "option": option})

    def tally(self, action_id: str) -> bytes:
        return self.sign("ballot.tally", {"id": action_id})

    # consortium governance (members; docs/GOVERNANCE.md)
    def propose(self, actions: list[dict[str, Any]], *, expires_at_height: int) -> bytes:
        """A proposal of `Action`s, all of one class; it counts as the signer's member's approval."""
        return self.sign("gov.propose", {"actions": actions, "expires_at_height": expires_at_height})

    def approve(self, proposal: int) -> bytes:
        return self.sign("gov.approve", {"proposal": proposal})

    def reject(self, proposal: int) -> bytes:
        return self.sign("gov.reject", {"proposal": proposal})

    def withdraw(self, proposal: int) -> bytes:
        return self.sign("gov.withdraw", {"proposal": proposal})

    # settlement instructions (parties and venue operators; docs/SETTLEMENT.md)
    def create_instruction(self, legs: list[tuple[str, bytes, bytes, int]], *, expires_at: int,
                           settlement_type: str = "on_affirmation", settle_at_height: int | None = None,
                           venue: bytes | None = None, reference: str | None = None) -> bytes:
        """`legs`: (token, from wallet, to wallet, amount), settled in this order."""
        return self.sign("settlement.create", {
            "legs": [list(leg) for leg in legs], "settlement_type": settlement_type,
            "settle_at_height": settle_at_height, "expires_at": expires_at, "venue": venue, "reference": reference})

    def affirm_instruction(self, instruction: int) -> bytes:
        return self.sign("settlement.affirm", {"id": instruction})

    def withdraw_affirmation(self, instruction: int) -> bytes:
        return self.sign("settlement.withdraw_affirmation", {"id": instruction})

    def reject_instruction(self, instruction: int) -> bytes:
        return self.sign("settlement.reject", {"id": instruction})

    def execute_instruction(self, instruction: int) -> bytes:
        return self.sign("settlement.execute", {"id": instruction})

    def expire_instruction(self, instruction: int) -> bytes:
        return self.sign("settlement.expire", {"id": instruction})

    # primary offerings (the token's owner or supply agents, and investors; docs/SETTLEMENT.md)
    def open_offering(self, offering: str, token: str, cash_token: str, *, price: int, raise_min: int,
                      raise_max: int, investor_min: int, investor_max: int, opens_at: int, closes_at: int,
                      cash_wallet: bytes) -> bytes:
        """`price`: cash base units per whole unit of `token`; limits in cash base units; window in unix s."""
        return self.sign("offering.open", {
            "id": offering, "token": token, "cash_token": cash_token, "price": price, "raise_min": raise_min,
            "raise_max": raise_max, "investor_min": investor_min, "investor_max": investor_max,
            "opens_at": opens_at, "closes_at": closes_at, "cash_wallet": cash_wallet})

    def subscribe(self, offering: str, amount: int) -> bytes:
        return self.sign("offering.subscribe", {"id": offering, "amount": amount})

    def withdraw_subscription(self, offering: str) -> bytes:
        return self.sign("offering.withdraw", {"id": offering})

    def close_offering(self, offering: str) -> bytes:
        return self.sign("offering.close", {"id": offering})

    def cancel_offering(self, offering: str) -> bytes:
        return self.sign("offering.cancel", {"id": offering})


class Action:
    """The actions a proposal may carry, one builder each (shapes in `ledger.kinds.ACTIONS`)."""

    @staticmethod
    def add_validator(validator_key: bytes, node_key: bytes, power: int, address: str, name: str) -> dict[str, Any]:
        return {"action": "validator.add", "validator_key": validator_key, "node_key": node_key, "power": power,
                "address": address, "name": name}

    @staticmethod
    def remove_validator(validator_key: bytes) -> dict[str, Any]:
        return {"action": "validator.remove", "validator_key": validator_key}

    @staticmethod
    def set_validator_power(validator_key: bytes, power: int) -> dict[str, Any]:
        return {"action": "validator.set_power", "validator_key": validator_key, "power": power}

    @staticmethod
    def rotate_validator(validator_key: bytes, new_validator_key: bytes, new_node_key: bytes) -> dict[str, Any]:
        return {"action": "validator.rotate", "validator_key": validator_key, "new_validator_key": new_validator_key,
                "new_node_key": new_node_key}

    @staticmethod
    def add_member(member_id: str, name: str, keys: list[bytes]) -> dict[str, Any]:
        return {"action": "member.add", "id": member_id, "name": name, "keys": sorted(keys)}

    @staticmethod
    def remove_member(member_id: str) -> dict[str, Any]:
        return {"action": "member.remove", "id": member_id}

    @staticmethod
    def set_member_keys(member_id: str, keys: list[bytes]) -> dict[str, Any]:
        return {"action": "member.set_keys", "id": member_id, "keys": sorted(keys)}

    @staticmethod
    def grant_role(role: str, account: bytes) -> dict[str, Any]:
        return {"action": "role.grant", "role": role, "account": account}

    @staticmethod
    def revoke_role(role: str, account: bytes) -> dict[str, Any]:
        return {"action": "role.revoke", "role": role, "account": account}

    @staticmethod
    def set_param(name: str, value: int) -> dict[str, Any]:
        return {"action": "params.set", "name": name, "value": value}
