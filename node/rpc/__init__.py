"""JSON-RPC 2.0 for a secledger node: wire format, method registry with OpenRPC, server, client.

The node declares `RpcMethod`s and `Topic`s in a `MethodRegistry`, serves it with `RpcServer`,
raises `RpcDomainError` subclasses from handlers and calls `RpcServer.publish` for subscribers.
See docs/RPC.md.
"""

from node.rpc.client import RpcClient, RpcError, RpcTransportError, Subscription
from node.rpc.dispatch import Dispatcher
from node.rpc.methods import MethodRegistry, Param, RpcMethod, Topic, TopicHistory, openrpc_document
from node.rpc.protocol import (
    ERROR_TABLE,
    ErrorCode,
    HistoryPruned,
    LimitExceeded,
    MempoolRefused,
    NotFound,
    ReadOnly,
    RpcDomainError,
    Timeout,
    TxRejected,
)
from node.rpc.server import RpcServer

__all__ = [
    "ERROR_TABLE",
    "Dispatcher",
    "ErrorCode",
    "HistoryPruned",
    "LimitExceeded",
    "MempoolRefused",
    "MethodRegistry",
    "NotFound",
    "Param",
    "ReadOnly",
    "RpcClient",
    "RpcDomainError",
    "RpcError",
    "RpcMethod",
    "RpcServer",
    "RpcTransportError",
    "Subscription",
    "Timeout",
    "Topic",
    "TopicHistory",
    "TxRejected",
    "openrpc_document",
]
