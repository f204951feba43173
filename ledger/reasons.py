"""Reason codes: why a transaction did not do what it asked.

Codes are the ERC-1066 / ERC-1400 transfer status bytes; each refusal also has a specific reason
name (`0x57 receiver_missing_claim:accredited`), so a transfer agent can tell an investor exactly
what to fix, and `compliance_check` can promise the very code execution would give.
"""

from __future__ import annotations

from dataclasses import dataclass

FAILURE: int = 0x50  # generic failure: unknown token, bad state for the operation
SUCCESS: int = 0x51
INSUFFICIENT_BALANCE: int = 0x52
TRANSFERS_HALTED: int = 0x54  # token paused
FUNDS_LOCKED: int = 0x55  # lock-up, volume limit
INVALID_SENDER: int = 0x56
INVALID_RECEIVER: int = 0x57
INVALID_OPERATOR: int = 0x58  # the signer may not do this


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a transaction came to: success, or a status byte and a reason name."""

    code: int
    reason: str

    @property
    def ok(self) -> bool:
        return self.code == SUCCESS

    def __str__(self) -> str:
        return f"0x{self.code:02x} {self.reason}"


OK: Outcome = Outcome(SUCCESS, "success")


class Refusal(Exception):
    """Raised inside execution to stop a transaction with its outcome; never escapes the ledger."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"0x{code:02x} {reason}")
        self.outcome = Outcome(code, reason)


def refuse(code: int, reason: str) -> Refusal:
    return Refusal(code, reason)
