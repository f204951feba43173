"""Where each piece of state lives: the key of every record, in one place.

Keys are bytes: a short prefix naming the record, then its parts. Token symbols and identity ids
cannot contain NUL (see `kinds`), so NUL separates parts and prefix scans never overlap.
"""

from __future__ import annotations

SEP = b"\x00"


def nonce(address: bytes) -> bytes:
    return b"nonce:" + address


def role(role_name: str, account: bytes) -> bytes:
    return b"role:" + role_name.encode() + SEP + account


def role_prefix(role_name: str) -> bytes:
    return b"role:" + role_name.encode() + SEP


def lost_wallet(address: bytes) -> bytes:
    """-> 1 once a recovery moved a holding off this wallet: it may never send or receive again."""
    return b"lost:" + address


def identity(identity_id: str) -> bytes:
    """-> tuple of the identity's wallet addresses, in ascending order."""
    return b"identity:" + identity_id.encode()


def wallet(address: bytes) -> bytes:
    """-> the identity id that owns this wallet."""
    return b"wallet:" + address


def claim(identity_id: str, topic: str) -> bytes:
    """-> (value, claim issuer, expires_at_s)."""
    return b"claim:" + identity_id.encode() + SEP + topic.encode()


def claim_prefix(identity_id: str) -> bytes:
    return b"claim:" + identity_id.encode() + SEP


def token(symbol: str) -> bytes:
    """-> token record: name, decimals, owner, paused, rules, created_at_s."""
    return b"token:" + symbol.encode()


def supply(symbol: str) -> bytes:
    """-> (total_supply, holder_count): the two numbers every transfer may change."""
    return b"supply:" + symbol.encode()


def agent(symbol: str, address: bytes) -> bytes:
    """-> tuple of the agent's roles on this token."""
    return b"agent:" + symbol.encode() + SEP + address


def agent_prefix(symbol: str) -> bytes:
    return b"agent:" + symbol.encode() + SEP


def balance(symbol: str, address: bytes) -> bytes:
    """-> (balance, frozen_amount, address_frozen) of one wallet."""
    return b"bal:" + symbol.encode() + SEP + address


def balance_prefix(symbol: str) -> bytes:
    return b"bal:" + symbol.encode() + SEP


def holding(symbol: str, identity_id: str) -> bytes:
    """-> (balance, lots) of one identity across its wallets; lots flat and oldest first:
    (acquired_at_s, amount, acquired_at_s, amount, ...)."""
    return b"holding:" + symbol.encode() + SEP + identity_id.encode()


def holding_prefix(symbol: str) -> bytes:
    return b"holding:" + symbol.encode() + SEP


def volume(symbol: str, identity_id: str) -> bytes:
    """-> (window_start_s, amount_sent) for the token's transfer volume rule."""
    return b"volume:" + symbol.encode() + SEP + identity_id.encode()


def reserved(symbol: str, address: bytes) -> bytes:
    """-> units of this wallet reserved for pending settlements and offering subscriptions (the
    sum over them): not free for the holder's own transfers until released or settled."""
    return b"reserved:" + symbol.encode() + SEP + address


# --- settlement instructions (ledger/settlement/instructions.py, docs/SETTLEMENT.md) ---------------
# Instruction ids are 8-byte big-endian, so a prefix scan walks them in creation order.

SETTLE_PREFIX = b"settle:"


def settle_instruction(instruction_id: int) -> bytes:
    """-> the instruction record (see settlement/instructions.py)."""
    return SETTLE_PREFIX + instruction_id.to_bytes(8, "big")


def settle_next_id() -> bytes:
    """-> the id the next instruction gets (absent: 1)."""
    return b"settle_next"


def settle_by_wallet_prefix(wallet: bytes) -> bytes:
    return b"settle_wallet:" + wallet


def settle_by_wallet(wallet: bytes, instruction_id: int) -> bytes:
    """-> 1 for every instruction in which the wallet sends or receives (a query index)."""
    return settle_by_wallet_prefix(wallet) + instruction_id.to_bytes(8, "big")


def settle_by_token_prefix(symbol: str) -> bytes:
    return b"settle_token:" + symbol.encode() + SEP


def settle_by_token(symbol: str, instruction_id: int) -> bytes:
    """-> 1 for every instruction with a leg of the token (a query index)."""
    return settle_by_token_prefix(symbol) + instruction_id.to_bytes(8, "big")


# --- primary offerings (ledger/settlement/offerings.py, docs/SETTLEMENT.md) -----------------------
# Offering ids are action ids (no NUL), so a prefix scan walks offerings, and one offering's
# subscriptions, in ascending id.

OFFERING_PREFIX = b"offering:"


def offering(offering_id: str) -> bytes:
    """-> the offering record: terms, status and totals (see settlement/offerings.py)."""
    return OFFERING_PREFIX + offering_id.encode()


def offering_subscribers(offering_id: str) -> bytes:
    """-> tuple of the identities holding a subscription, in subscription order (while open)."""
    return b"offering_order:" + offering_id.encode()


def offering_subscription_prefix(offering_id: str) -> bytes:
    return b"offering_sub:" + offering_id.encode() + SEP


def offering_subscription(offering_id: str, identity_id: str) -> bytes:
    """-> one identity's subscription: wallet, amount escrowed, and after the close its outcome."""
    return offering_subscription_prefix(offering_id) + identity_id.encode()


BALANCE_PREFIX = b"bal:"
SUPPLY_PREFIX = b"supply:"
HOLDING_PREFIX = b"holding:"


def role_count(role_name: str) -> bytes:
    """-> how many accounts hold the role (so the last administrator cannot be removed)."""
    return b"role_count:" + role_name.encode()


# --- consortium governance (ledger/governance.py, docs/GOVERNANCE.md) -----------------------------
# Heights and proposal ids are 8-byte big-endian, so a prefix scan walks them in order.

GOV_PROPOSAL_PREFIX = b"gov_proposal:"
GOV_VALSET_PREFIX = b"gov_valset:"


def gov_members() -> bytes:
    """-> tuple of the current members' ids, ascending (empty or absent: no governance)."""
    return b"gov_members"


def gov_member(member_id: str) -> bytes:
    """-> {"name", "keys" (ascending), "serial", "since_height"} of one current member."""
    return b"gov_member:" + member_id.encode()


def gov_member_key(key: bytes) -> bytes:
    """-> the id of the member holding this account key."""
    return b"gov_member_key:" + key


def gov_member_serial() -> bytes:
    """-> the serial given to the last member added (a re-added id gets a new one, so votes cast
    under its earlier membership do not count again)."""
    return b"gov_member_serial"


def gov_thresholds() -> bytes:
    """-> {class: (numerator, denominator)} for validators, members, roles, params."""
    return b"gov_thresholds"


def gov_next_proposal() -> bytes:
    """-> the id the next proposal gets (absent: 1)."""
    return b"gov_next_proposal"


def gov_proposal(proposal_id: int) -> bytes:
    """-> the proposal record (see governance.py)."""
    return GOV_PROPOSAL_PREFIX + proposal_id.to_bytes(8, "big")


def gov_open() -> bytes:
    """-> tuple of the ids of proposals still open (expired ones are dropped as they are met)."""
    return b"gov_open"


def gov_valset(effective_height: int) -> bytes:
    """-> {"previous": effective height of the set before, "validators": ((validator_key, node_key,
    power, address, name), ...) ascending by key, "moved": voting power moved into this set}."""
    return GOV_VALSET_PREFIX + effective_height.to_bytes(8, "big")


def gov_valset_latest() -> bytes:
    """-> the effective height of the latest scheduled validator set."""
    return b"gov_valset_latest"


def chain_params() -> bytes:
    """-> {name: value} of the chain parameters (block limits, consensus timeouts)."""
    return b"chain_params"
