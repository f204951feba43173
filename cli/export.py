"""`secledger export events|holders|transfers`: audit exports for regulators and auditors.

Each export asks a node over its public JSON-RPC, page by page, and writes every page to the file
before asking for the next: it holds one page and the file writer in memory, whatever the size of
the chain. Formats: Parquet (pyarrow), CSV, JSON Lines. Amounts can reach 2^64-1, past a signed
64-bit integer: Parquet stores them as decimal(20,0), CSV and JSON Lines as plain integers. The
node may send an amount as a JSON integer or as a decimal string; both are read exactly (`int`),
never through a float. Schemas and DuckDB queries: docs/EXPORT.md.

The file appears only when the export is complete: it is written under a temporary name beside
`--out` and renamed at the end, so a failed export never leaves half a file that looks whole.
Errors follow cli/commands.py: one line naming the flag or file; exit 2 for a usage error (a bad
value, an output file that cannot be written), 1 when the node fails or refuses.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import tempfile
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ledger.errors import InvalidBody, InvalidTransaction
from ledger.events import EVENT_KINDS
from ledger.kinds import identity_id as check_identity
from ledger.kinds import symbol as check_symbol
from ledger.tx import decode_transaction

from . import commands
from .commands import CliError

if TYPE_CHECKING:
    from node.rpc.client import RpcClient

FORMATS: tuple[str, ...] = ("parquet", "csv", "jsonl")
#: Most items one page may hold (the node's `queries.PAGE_LIMIT_MAX`).
PAGE_SIZE_MAX: int = 1000
#: Wallet -> identity answers kept while exporting transfers (bounded, so memory stays flat).
IDENTITY_CACHE_MAX: int = 4096
#: Digits after the point of the percentages of the holders export (rounded down).
PERCENT_DIGITS: int = 6
#: The kinds of transaction whose refusals the transfers export lists.
TRANSFER_KINDS: dict[str, str] = {"token.transferred": "token.transfer",
                                  "token.force_transferred": "token.force_transfer"}


# --- columns and file writers -------------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    """One column: `int` (heights, indexes; int64), `amount` (base units, up to 2^64-1:
    decimal(20,0) in Parquet), `str`, `bool`, or `list` (of strings: a list in Parquet and JSON
    Lines, space-separated in CSV)."""

    name: str
    type: str


EVENT_COLUMNS: tuple[Column, ...] = (
    Column("height", "int"), Column("tx_index", "int"), Column("event_index", "int"), Column("tx", "str"),
    Column("kind", "str"), Column("token", "str"), Column("addresses", "list"), Column("identity", "str"),
    Column("amount", "amount"), Column("code", "str"), Column("reason", "str"), Column("data", "str"),
)
HOLDER_COLUMNS: tuple[Column, ...] = (
    Column("height", "int"), Column("token", "str"), Column("identity", "str"), Column("country", "str"),
    Column("wallet", "str"), Column("balance", "amount"), Column("percent", "str"),
    Column("identity_balance", "amount"), Column("identity_percent", "str"), Column("frozen", "amount"),
    Column("address_frozen", "bool"), Column("frozen_height", "int"),
)
TRANSFER_COLUMNS: tuple[Column, ...] = (
    Column("height", "int"), Column("tx_index", "int"), Column("event_index", "int"), Column("tx", "str"),
    Column("token", "str"), Column("kind", "str"), Column("status", "str"), Column("from", "str"),
    Column("to", "str"), Column("from_identity", "str"), Column("to_identity", "str"), Column("amount", "amount"),
    Column("code", "str"), Column("reason", "str"),
)


class Sink:
    """Writes pages of rows (dicts by column name) to one file format."""

    def __init__(self, path: Path, columns: tuple[Column, ...]) -> None:
        self.path = path
        self.columns = columns
        self.rows = 0

    def write(self, rows: list[dict[str, Any]]) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class ParquetSink(Sink):
    def __init__(self, path: Path, columns: tuple[Column, ...]) -> None:
        super().__init__(path, columns)
        import pyarrow as pa
        import pyarrow.parquet as pq

        types = {"int": pa.int64(), "amount": pa.decimal128(20, 0), "str": pa.string(), "bool": pa.bool_(),
                 "list": pa.list_(pa.string())}
        self._pa = pa
        self.schema = pa.schema([pa.field(c.name, types[c.type]) for c in columns])
        self._amounts = [c.name for c in columns if c.type == "amount"]
        self._writer = pq.ParquetWriter(str(path), self.schema, compression="zstd")

    def write(self, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        for row in rows:
            for name in self._amounts:
                if row.get(name) is not None:
                    row[name] = Decimal(row[name])
        self._writer.write_table(self._pa.Table.from_pylist(rows, schema=self.schema))  # one row group a page
        self.rows += len(rows)

    def close(self) -> None:
        self._writer.close()


class CsvSink(Sink):
    def __init__(self, path: Path, columns: tuple[Column, ...]) -> None:
        super().__init__(path, columns)
        self._file = open(path, "w", newline="", encoding="utf-8")  # noqa: SIM115 - closed in close()
        self._csv = csv.writer(self._file)
        self._csv.writerow([c.name for c in columns])

    def write(self, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            self._csv.writerow([_csv_cell(row.get(c.name), c.type) for c in self.columns])
        self.rows += len(rows)

    def close(self) -> None:
        self._file.close()


class JsonlSink(Sink):
    def __init__(self, path: Path, columns: tuple[Column, ...]) -> None:
        super().__init__(path, columns)
        self._file = open(path, "w", encoding="utf-8")  # noqa: SIM115 - closed in close()

    def write(self, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            self._file.write(json.dumps({c.name: row.get(c.name) for c in self.columns}, separators=(",", ":")))
            self._file.write("\n")
        self.rows += len(rows)

    def close(self) -> None:
        self._file.close()


SINKS: dict[str, Callable[[Path, tuple[Column, ...]], Sink]] = {
    "parquet": ParquetSink, "csv": CsvSink, "jsonl": JsonlSink}


def _csv_cell(value: Any, kind: str) -> Any:
    if value is None:
        return ""
    if kind == "bool":
        return "true" if value else "false"
    if kind == "list":
        return " ".join(value)
    return value


class Output:
    """The export's file: written under a temporary name in the same directory, renamed onto
    `--out` only by `commit`; `discard` removes it."""

    def __init__(self, out: Path, fmt: str, columns: tuple[Column, ...]) -> None:
        self.out = out
        directory = out.parent if str(out.parent) else Path(".")
        if out.is_dir():
            raise CliError(f"--out: {out}: is a directory", exit_code=2)
        try:
            handle, name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".part", dir=directory)
            os.close(handle)
        except OSError as exc:
            raise CliError(f"--out: {out}: cannot write ({exc.strerror or exc})", exit_code=2) from None
        self.temporary = Path(name)
        try:
            self.sink = SINKS[fmt](self.temporary, columns)
        except OSError as exc:
            self.temporary.unlink(missing_ok=True)
            raise CliError(f"--out: {out}: cannot write ({exc.strerror or exc})", exit_code=2) from None

    def write(self, rows: list[dict[str, Any]]) -> None:
        try:
            self.sink.write(rows)
        except OSError as exc:
            raise CliError(f"--out: {self.out}: cannot write ({exc.strerror or exc})") from None

    def commit(self) -> int:
        try:
            self.sink.close()
            umask = os.umask(0)  # mkstemp made it 0600: give it the mode a new file would have
            os.umask(umask)
            os.chmod(self.temporary, 0o666 & ~umask)
            os.replace(self.temporary, self.out)
        except OSError as exc:
            raise CliError(f"--out: {self.out}: cannot write ({exc.strerror or exc})") from None
        return self.sink.rows

    def discard(self) -> None:
        try:
            self.sink.close()
        except Exception:  # noqa: BLE001 - the export failed already; its own error is the one to report
            pass
        self.temporary.unlink(missing_ok=True)


# --- values from the node ------------------------------------------------------------------------------


def amount(value: Any) -> int | None:
    """An amount as the node sends it, a JSON integer or a decimal string, read exactly."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    raise CliError(f"the node sent {value!r} where an amount was expected")


def percent(part: int, total: int) -> str:
    """`part` of `total` in percent, as a decimal string rounded down: exact, no float."""
    if total <= 0:
        return "0." + "0" * PERCENT_DIGITS
    scaled = part * 100 * 10**PERCENT_DIGITS // total
    whole, fraction = divmod(scaled, 10**PERCENT_DIGITS)
    return f"{whole}.{fraction:0{PERCENT_DIGITS}d}"


#: Fields of event data that hold u64 quantities, which a node may send as decimal strings.
DATA_AMOUNTS: frozenset[str] = frozenset({
    "amount", "balance", "frozen", "free", "frozen_amount", "total_supply", "rate_num", "rate_den", "units",
    "funded", "paid", "remaining", "entitlement", "distributed", "payout", "weight"})


def _plain_data(data: dict[str, Any]) -> str:
    """An event's data as JSON with sorted keys, its quantities integers whatever the node sent."""
    return json.dumps(_integers(data), sort_keys=True, separators=(",", ":"))


def _integers(value: Any, key: str | None = None) -> Any:
    if isinstance(value, dict):
        return {k: _integers(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_integers(v, key) for v in value]
    if key in DATA_AMOUNTS and isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    return value


def _code(value: Any) -> str | None:
    """A reason code as "0x57", from the integer of an event or the string of a receipt."""
    if value is None:
        return None
    return f"0x{value:02x}" if isinstance(value, int) else str(value)


# --- the exports --------------------------------------------------------------------------------------


@dataclass
class Export:
    """What every export shares: the node, the output, the page size and the progress display."""

    client: RpcClient
    output: Output
    fmt: str
    page_size: int
    progress: Progress

    def call(self, method: str, *, missing_ok: bool = False, **params: Any) -> Any:
        return commands.rpc_call(self.client, method, missing_ok=missing_ok, **params)

    def pages(self, method: str, key: str, **params: Any) -> Iterator[list[dict[str, Any]]]:
        """Every page of a paged method (`after` in, `next` out), one at a time."""
        after = None
        while True:
            page = self.call(method, **params, limit=self.page_size, **({"after": after} if after else {}))
            yield page[key]
            after = page.get("next")
            if after is None:
                return

    def finish(self, summary: dict[str, Any]) -> dict[str, Any]:
        rows = self.output.commit()
        return {"out": str(self.output.out), "format": self.fmt, "rows": rows, **summary}


@contextmanager
def _export(args: Any, columns: tuple[Column, ...]) -> Iterator[Export]:
    """Checks the common flags, opens the node client and the output; on any failure the
    partial file is removed and the progress bar cleared."""
    url = commands.rpc_url(args.rpc)
    fmt = _format(args)
    if not 1 <= args.page_size <= PAGE_SIZE_MAX:
        raise CliError(f"--page-size: expected 1 to {PAGE_SIZE_MAX}, got {args.page_size}", exit_code=2)
    for flag in ("from_height", "to_height", "height"):
        value = getattr(args, flag, None)
        if value is not None and value < 0:
            raise CliError(f"--{flag.replace('_', '-')}: expected 0 or more, got {value}", exit_code=2)
    job = Export(commands.rpc_client(url), Output(args.out, fmt, columns), fmt, args.page_size,
                 Progress(args.command_name))
    try:
        yield job
    except BaseException:
        job.output.discard()
        raise
    finally:
        job.progress.stop()


def export_events(args: Any) -> dict[str, Any]:
    filters = _event_filters(args)
    with _export(args, EVENT_COLUMNS) as job:
        top = _to_height(job, args)
        if args.token is not None:  # an unknown token or identity: "not found", exit 1, not an empty file
            job.call("token_get", token=filters["token"])
        if args.identity is not None:
            job.call("identity_get", identity=filters["identity"])
        job.progress.start(top - args.from_height + 1, "heights")
        for events in job.pages("events_query", "events", **filters, from_height=args.from_height, to_height=top):
            job.output.write([_event_row(e, args.identity) for e in events])
            if events:
                job.progress.update(events[-1]["height"] - args.from_height + 1)
        return job.finish({"from_height": args.from_height, "to_height": top})


def _event_row(event: dict[str, Any], identity: str | None) -> dict[str, Any]:
    data = event.get("data") or {}
    rejected = event["kind"] == "tx.rejected"
    return {"height": event["height"], "tx_index": event["tx_index"], "event_index": event["event_index"],
            "tx": event["tx"], "kind": event["kind"], "token": event.get("token"),
            "addresses": list(event.get("addresses") or ()), "identity": identity,
            "amount": amount(data.get("amount")), "code": _code(data.get("code")) if rejected else None,
            "reason": data.get("reason") if rejected else None, "data": _plain_data(data)}


def export_transfers(args: Any) -> dict[str, Any]:
    token = _symbol(args.token)
    with _export(args, TRANSFER_COLUMNS) as job:
        top = _to_height(job, args)
        job.call("token_get", token=token)  # an unknown token: "not found", exit 1
        identities = _IdentityCache(job)
        blocks = _BlockCache(job)
        job.progress.start(top - args.from_height + 1, "heights")
        for events in job.pages("events_query", "events", token=token, from_height=args.from_height, to_height=top):
            rows = []
            for event in events:
                row = _transfer_row(event, blocks)
                if row is not None:
                    row["from_identity"] = identities.of(row["from"])
                    row["to_identity"] = identities.of(row["to"])
                    rows.append(row)
            job.output.write(rows)
            if events:
                job.progress.update(events[-1]["height"] - args.from_height + 1)
        return job.finish({"token": token, "from_height": args.from_height, "to_height": top})


def _transfer_row(event: dict[str, Any], blocks: _BlockCache) -> dict[str, Any] | None:
    kind, data = event["kind"], event.get("data") or {}
    row = {"height": event["height"], "tx_index": event["tx_index"], "event_index": event["event_index"],
           "tx": event["tx"], "token": event.get("token")}
    if kind in TRANSFER_KINDS:
        return {**row, "kind": TRANSFER_KINDS[kind], "status": "committed", "from": data["from"], "to": data["to"],
                "amount": amount(data["amount"]), "code": "0x51", "reason": "success"}
    if kind == "tx.rejected" and data.get("kind") in TRANSFER_KINDS.values():
        signer, body = blocks.transaction(event["height"], event["tx_index"])
        sender = body.get("from", signer)  # a holder's transfer moves the signer's own units
        return {**row, "kind": data["kind"], "status": "refused", "from": _hex(sender), "to": _hex(body.get("to")),
                "amount": amount(body.get("amount")), "code": _code(data.get("code")), "reason": data.get("reason")}
    return None


def export_holders(args: Any) -> dict[str, Any]:
    token = _symbol(args.token)
    with _export(args, HOLDER_COLUMNS) as job:
        height = args.height if args.height is not None else job.call("chain_status")["height"]
        # first pass: the total held at the height (every unit is held by some identity), for the
        # percentages; only a running sum stays in memory
        total, identities = 0, 0
        for holders in job.pages("token_holders", "holders", token=token, height=height):
            total += sum(amount(h["balance"]) or 0 for h in holders)
            identities += len(holders)
        job.progress.start(identities, "identities")
        done = 0
        for holders in job.pages("token_holders", "holders", token=token, height=height):
            rows = []
            for holder in holders:
                rows.extend(_holder_rows(job, token, height, holder, total))
            job.output.write(rows)
            done += len(holders)
            job.progress.update(done)
        return job.finish({"token": token, "height": height, "identities": identities, "total": total})


def _holder_rows(job: Export, token: str, height: int, holder: dict[str, Any], total: int) -> list[dict[str, Any]]:
    identity = job.call("identity_get", identity=holder["identity"])
    held = amount(holder["balance"]) or 0
    country = next((c["value"] for c in identity.get("claims", ()) if c["topic"] == "country" and c.get("valid")),
                   None)
    rows = []
    for wallet in identity["wallets"]:  # its wallets now: one added after the height held 0 then
        then = amount(job.call("token_balance", token=token, address=wallet, height=height)["balance"]) or 0
        if then == 0:
            continue
        now = job.call("token_balance", token=token, address=wallet)
        rows.append({"height": height, "token": token, "identity": holder["identity"], "country": country,
                     "wallet": wallet, "balance": then, "percent": percent(then, total),
                     "identity_balance": held, "identity_percent": percent(held, total),
                     "frozen": amount(now.get("frozen")), "address_frozen": now.get("address_frozen"),
                     "frozen_height": now.get("height")})
    return rows


class _IdentityCache:
    """Wallet -> identity id (None: no identity), at most IDENTITY_CACHE_MAX answers kept."""

    def __init__(self, job: Export) -> None:
        self._job = job
        self._known: OrderedDict[str, str | None] = OrderedDict()

    def of(self, wallet: str | None) -> str | None:
        if wallet is None:
            return None
        if wallet in self._known:
            self._known.move_to_end(wallet)
            return self._known[wallet]
        found = self._job.call("identity_get", address=wallet, missing_ok=True)
        self._known[wallet] = None if found is None else found["identity"]
        if len(self._known) > IDENTITY_CACHE_MAX:
            self._known.popitem(last=False)
        return self._known[wallet]


class _BlockCache:
    """The transactions of the last block asked for: a refused transfer's sender, receiver and
    amount are in its transaction, not in its `tx.rejected` event."""

    def __init__(self, job: Export) -> None:
        self._job = job
        self._height = -1
        self._block: dict[str, Any] = {}

    def transaction(self, height: int, index: int) -> tuple[Any, dict[str, Any]]:
        """(signer, body) of the transaction at `index` in the block at `height`."""
        if height != self._height:
            self._block, self._height = self._job.call("block_get", height=height), height
        raw_txs = self._block.get("txs_raw")  # RPC 0.2: `txs` decoded, the signed bytes here
        tx = raw_txs[index] if isinstance(raw_txs, list) else self._block["txs"][index]
        if isinstance(tx, dict):  # decoded, without the signed bytes: take the body as the node read it
            return tx.get("signer"), dict(tx.get("body") or {})
        try:
            decoded = decode_transaction(bytes.fromhex(tx), chain_id=self._block["chain_id"], verify_signature=False)
        except (ValueError, InvalidTransaction) as exc:
            raise CliError(f"block_get: transaction {index} of height {height} does not decode ({exc})") from None
        return decoded.signer, decoded.body


def _hex(value: Any) -> str | None:
    if value is None:
        return None
    return value.hex() if isinstance(value, bytes) else str(value)


def _format(args: Any) -> str:
    if args.format is not None:
        return args.format
    suffix = args.out.suffix.lstrip(".").lower()
    if suffix in FORMATS:
        return suffix
    raise CliError(f"--format: needed (parquet, csv or jsonl) when --out does not end in one of them: {args.out}",
                   exit_code=2)


def _to_height(job: Export, args: Any) -> int:
    """--to-height, or the node's height when the export starts (so the export is one fixed range
    even while blocks keep coming)."""
    top = args.to_height if args.to_height is not None else job.call("chain_status")["height"]
    if top < args.from_height:
        raise CliError(f"--to-height: {top} is below --from-height {args.from_height}", exit_code=2)
    return top


def _symbol(value: str) -> str:
    try:
        return check_symbol("--token", value)
    except InvalidBody as exc:
        raise CliError(str(exc), exit_code=2) from None


def _event_filters(args: Any) -> dict[str, Any]:
    filters: dict[str, Any] = {}
    if args.token is not None:
        filters["token"] = _symbol(args.token)
    if args.identity is not None:
        try:
            filters["identity"] = check_identity("--identity", args.identity)
        except InvalidBody as exc:
            raise CliError(str(exc), exit_code=2) from None
    if args.kind is not None:
        if args.kind not in EVENT_KINDS:
            raise CliError(f"--kind: no event kind {args.kind!r} (e.g. token.transferred, tx.rejected, "
                           "claim.granted)", exit_code=2)
        filters["kind"] = args.kind
    return filters


class Progress:
    """A progress bar on stderr when stderr is a terminal (rich); nothing otherwise, so logs and
    pipes get only the final line."""

    def __init__(self, what: str) -> None:
        self.what = what
        self._bar: Any = None
        self._task: Any = None

    def start(self, total: int, unit: str) -> None:
        from rich.console import Console

        console = Console(stderr=True)
        if not console.is_terminal:
            return
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
        from rich.progress import Progress as Bar

        self._bar = Bar(TextColumn(f"export {self.what}"), BarColumn(), MofNCompleteColumn(), TextColumn(unit),
                        TimeRemainingColumn(), console=console, transient=True)
        self._task = self._bar.add_task(self.what, total=max(total, 0))
        self._bar.start()

    def update(self, completed: int) -> None:
        if self._bar is not None:
            self._bar.update(self._task, completed=completed)

    def stop(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


# --- the command line ---------------------------------------------------------------------------------


def add_parsers(group: Any, rpc_flag: Callable[[argparse.ArgumentParser], None]) -> None:
    """`secledger export events|holders|transfers` under `group` (the `export` subcommand's)."""

    def common(name: str, help_text: str, run: Callable[[Any], Any]) -> argparse.ArgumentParser:
        p = group.add_parser(name, help=help_text, description=help_text + " Schemas: docs/EXPORT.md.")
        p.add_argument("--format", choices=FORMATS, help="file format (default: from --out's extension)")
        p.add_argument("--out", type=commands.PATH, required=True, metavar="FILE",
                       help="the file to write (replaced only once the export is complete)")
        p.add_argument("--page-size", type=commands.INTEGER, default=PAGE_SIZE_MAX, metavar="N",
                       help=f"items asked per call, 1 to {PAGE_SIZE_MAX} (default {PAGE_SIZE_MAX})")
        rpc_flag(p)
        p.set_defaults(run=run, command_name=name)
        return p

    def heights(p: argparse.ArgumentParser) -> None:
        p.add_argument("--from-height", type=commands.INTEGER, default=0, metavar="A", help="first height (default 0)")
        p.add_argument("--to-height", type=commands.INTEGER, default=None, metavar="B",
                       help="last height (default: the node's height when the export starts)")

    p = common("events", "every event matching the filters, oldest first.", export_events)
    p.add_argument("--token", help="symbol")
    p.add_argument("--identity", help="the events that concern this identity (its trail)")
    p.add_argument("--kind", help="event kind, e.g. token.transferred or tx.rejected")
    heights(p)
    p = common("holders", "a token's holders at a height, by identity and wallet, with shares of the supply.",
               export_holders)
    p.add_argument("--token", required=True, help="symbol")
    p.add_argument("--height", type=commands.INTEGER, default=None, metavar="H",
                   help="the record height (default: the node's height when the export starts)")
    p = common("transfers", "a token's transfers in a range of heights: committed ones, and those refused in "
               "their block with the reason.", export_transfers)
    p.add_argument("--token", required=True, help="symbol")
    heights(p)
