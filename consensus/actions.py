"""What the core asks its driver to do: small frozen records, carried out in list order.

Order matters: a ``PersistSignState`` always precedes the ``Broadcast`` of what it signed in the
same list, and the driver must make it durable (write and fsync) before sending anything after it.
"""

from __future__ import annotations

from dataclasses import dataclass

from consensus.certificate import CommitCertificate
from consensus.evidence import Evidence
from consensus.messages import Message
from consensus.signing import SignState
from consensus.timeouts import Step


@dataclass(frozen=True, slots=True)
class Broadcast:
    """Send ``message`` (encode with ``encode_message``) to every peer."""

    message: Message


@dataclass(frozen=True, slots=True)
class PersistSignState:
    """Durably save ``state`` before carrying out any later action of the same list."""

    state: SignState


@dataclass(frozen=True, slots=True)
class ScheduleTimeout:
    """Call ``core.on_timeout(height, round, step)`` after ``duration_ms``; never cancel it, the
    core ignores timeouts that no longer apply."""

    height: int
    round: int
    step: Step
    duration_ms: int


@dataclass(frozen=True, slots=True)
class RequestProposal:
    """We propose in (height, round): build a block, then call ``core.propose(height, round, id)``."""

    height: int
    round: int


@dataclass(frozen=True, slots=True)
class ValidateBlock:
    """Judge the block ``block_id`` (fetch it if needed), then call ``core.block_validity``."""

    height: int
    round: int
    block_id: bytes


@dataclass(frozen=True, slots=True)
class Decide:
    """``block_id`` is decided at ``height``: apply it, save it with ``certificate``, then call
    ``core.start_height(height + 1, validators)``."""

    height: int
    round: int
    block_id: bytes
    certificate: CommitCertificate


@dataclass(frozen=True, slots=True)
class ReportEvidence:
    """A validator signed two conflicting messages; keep ``evidence`` and make it queryable."""

    evidence: Evidence


Action = Broadcast | PersistSignState | ScheduleTimeout | RequestProposal | ValidateBlock | Decide | ReportEvidence
