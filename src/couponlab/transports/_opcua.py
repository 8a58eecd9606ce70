"""The OPC UA client: one asyncua client per device, with timeouts, typed errors, bounded
reconnection and subscriptions.

Every signal and command of a device shares one :class:`OpcUaConnection`, and no two devices
share one: a dropped link (or a closed client) of one device never touches another. Each
request has a timeout (:class:`~couponlab.errors.InstrumentTimeoutError`); a dropped link
raises :class:`~couponlab.errors.ConnectionLostError`; the next request reconnects with a
bounded :class:`~couponlab.transports.Backoff` (run by ``stamina``). Reads (idempotent) are
retried once on a fresh connection; writes and method calls never are (the caller decides).
A Bad status in a reply raises :class:`OpcUaStatusError`, which names the node and the status
code. After two timeouts in a row the link is dropped (a garbled or cut message leaves the
client's stream out of step for good) and a read is retried once on a fresh one.

Data-change subscriptions (one asyncua ``Subscription`` per connection, one monitored item
per subscribed node) are re-created after a reconnection.

Every connection reads the server's ``ServerStatus.StartTime``; when a reconnection finds a
different one, the server restarted meanwhile (a power loss) and the next request raises
:class:`~couponlab.errors.InstrumentRestartedError` once.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast
from urllib.parse import urlparse

from asyncua import ua
from asyncua.client.client import Client
from asyncua.common.node import Node
from asyncua.common.subscription import DataChangeNotif, Subscription
from asyncua.ua.attribute_ids import AttributeIds
from asyncua.ua.object_ids import ObjectIds
from asyncua.ua.status_codes import StatusCodes, get_name_and_doc
from asyncua.ua.uaerrors import UaError, UaStatusCodeError

from couponlab.errors import (
    AccessDeniedError,
    ConnectionLostError,
    InputError,
    InstrumentRestartedError,
    InstrumentTimeoutError,
    ProtocolError,
)
from couponlab.transports._base import Backoff
from couponlab.transports._deadline import reply_deadline, stall_note
from couponlab.transports._link_state import LinkState
from couponlab.transports._opcua_security import ClientSecurity

log = logging.getLogger(__name__)

_CLIENT_HANDLES = itertools.count(1)
"""Client handles of monitored items, unique in this process (so a retired one is no other's)."""
_RETIRED: dict[int, None] = {}
"""Client handles of monitored items this process removed, oldest first (at most 4096)."""
_UNKNOWN_HANDLE = "Received a notification for unknown handle: %s"


def _retire(handle: int) -> None:
    _RETIRED[handle] = None
    while len(_RETIRED) > 4096:
        del _RETIRED[next(iter(_RETIRED))]


class _RetiredHandleFilter(logging.Filter):
    """Turn asyncua's warning about a notification for an unknown monitored item into a
    debug line when the item is one this process removed: the server had queued the data
    change before it deleted the item, so it comes after (any other unknown handle still
    warns)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        if record.msg == _UNKNOWN_HANDLE and args[:1] and args[0] in _RETIRED:
            log.debug("late data change for removed monitored item %s ignored", args[0])
            return False
        return True


logging.getLogger("asyncua.common.subscription").addFilter(_RetiredHandleFilter())

T = TypeVar("T")

DataCallback = Callable[[ua.DataValue], None]
"""Called with every new value of a monitored node (on the connection's event loop)."""

_LINK_CODES = frozenset(
    {
        StatusCodes.BadConnectionClosed,
        StatusCodes.BadSecureChannelClosed,
        StatusCodes.BadSessionClosed,
        StatusCodes.BadSessionIdInvalid,
        StatusCodes.BadServerNotConnected,
        StatusCodes.BadCommunicationError,
        StatusCodes.BadShutdown,
        StatusCodes.BadNotConnected,
        StatusCodes.BadDisconnect,
    }
)
"""Status codes that mean the link (not the request) failed."""

_TRUST_CODES = frozenset(
    {StatusCodes.BadCertificateUntrusted, StatusCodes.BadSecurityChecksFailed}
)
_USER_CODES = frozenset(
    {
        StatusCodes.BadUserAccessDenied,
        StatusCodes.BadIdentityTokenRejected,
        StatusCodes.BadIdentityTokenInvalid,
    }
)
_CERT_CODES = frozenset(
    {
        StatusCodes.BadCertificateInvalid,
        StatusCodes.BadCertificateTimeInvalid,
        StatusCodes.BadCertificateUriInvalid,
        StatusCodes.BadCertificateUseNotAllowed,
        StatusCodes.BadCertificateRevoked,
    }
)

BACKSTOP_FACTOR = 5.0
"""asyncua's own timeout on each request is this many times the connection's timeout. The
connection's deadline (:func:`~couponlab.transports._deadline.reply_deadline`, which does not
count this process's stalls) is the one that applies; asyncua's plain one, which would blame
the instrument for a stall of this process, is only the last resort."""

SESSION_TIMEOUT_MS = 600_000
"""Session timeout the client requests, ms (10 min): how long a server keeps a session whose
client has gone silent. asyncua requests 1 h by default, which its own server (the twins)
revises to its 10 min maximum with a warning on every connection. A server that grants less
still logs asyncua's "Requested session timeout" warning: that one is about the lab's server.
The link itself is watched far more often (the watchdog, ``max(5 s, 2 x timeout)``)."""


class _LinkDownError(ConnectionError):
    """An OPC UA error while opening the link (retried like a refused connection)."""


class OpcUaStatusError(ProtocolError):
    """The server answered a request with a Bad status code.

    Attributes
    ----------
    status
        The status code's name, e.g. ``"BadOutOfRange"``.
    what
        The request (node and operation) that was refused.
    """

    def __init__(self, device: str, what: str, status: str, detail: str = "") -> None:
        self.status = status
        self.what = what
        extra = f" ({detail})" if detail else ""
        super().__init__(device, f"{what} refused by the instrument: {status}{extra}")


def status_name(code: ua.StatusCode | int) -> str:
    """Return the name of a status code (``"BadOutOfRange"``)."""
    value = code.value if isinstance(code, ua.StatusCode) else int(code)
    name, _doc = get_name_and_doc(value)
    return str(name)


def check_endpoint(device: str, url: str) -> tuple[str, int]:
    """Check an ``opc.tcp://host:port`` address and return ``(host, port)``.

    Raises
    ------
    InputError
        Another scheme, no host, or a port outside 1..65535.
    """
    parsed = urlparse(url)
    if parsed.scheme != "opc.tcp":
        raise InputError(device, f"address {url!r} is not an opc.tcp://host:port URL")
    try:
        port = parsed.port
    except ValueError:
        port = None
    if not parsed.hostname or port is None or not 0 < port < 65536:
        raise InputError(device, f"address {url!r} needs a host and a port in 1..65535")
    return parsed.hostname, port


@dataclass
class _Monitor:
    string_id: str
    callback: DataCallback
    handle: int | None = None


class _Handler:
    """asyncua subscription handler that forwards data changes to the connection."""

    def __init__(self, connection: OpcUaConnection) -> None:
        self._connection = connection

    def datachange_notification(self, node: Node, val: Any, data: DataChangeNotif) -> None:
        handle = data.subscription_data.client_handle
        if handle is not None:
            self._connection.dispatch(handle, data.monitored_item.Value)

    def status_change_notification(self, status: ua.StatusChangeNotification) -> None:
        log.info("%s: subscription status %s", self._connection.device, status.Status)


class OpcUaConnection:
    """The asyncua client of one device, shared by all its signals and commands.

    Parameters
    ----------
    device
        Device name for error messages.
    url
        ``opc.tcp://host:port`` of the server.
    namespace_uri
        URI of the namespace the device's string node ids live in; its index is looked up at
        each connection, never hard-coded.
    timeout
        Timeout of one request (and of opening the connection), s (> 0).
    backoff
        Reconnection policy (bounded attempts).
    publishing_interval
        Publishing interval of the data-change subscription, s (> 0).
    security
        Basic256Sha256 SignAndEncrypt, certificates and user (None: NoSecurity, anonymous).
        A refusal of who we are (untrusted certificate either way, wrong user or password,
        no endpoint with that security) raises ``AccessDeniedError`` and is not retried.
    """

    def __init__(
        self,
        device: str,
        url: str,
        namespace_uri: str,
        *,
        timeout: float = 2.0,
        backoff: Backoff | None = None,
        publishing_interval: float = 0.1,
        security: ClientSecurity | None = None,
    ) -> None:
        if timeout <= 0:
            raise InputError(device, f"timeout = {timeout} s must be > 0")
        if publishing_interval <= 0:
            raise InputError(device, f"publishing_interval = {publishing_interval} s must be > 0")
        check_endpoint(device, url)
        self.device = device
        self.url = url
        self.namespace_uri = namespace_uri
        self.timeout = timeout
        self.backoff = backoff or Backoff()
        self.publishing_interval = publishing_interval
        self.security = security
        self.generation = 0
        """Incremented at every (re)connection; cached nodes of older generations are stale."""
        self.reconnects = 0
        """How many times the link was re-established after a loss."""
        self._client: Client | None = None
        self._ns = -1
        self._nodes: dict[str, Node] = {}
        self._lock = asyncio.Lock()
        self._closed = False
        self._subscription: Subscription | None = None
        self._monitors: dict[int, _Monitor] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._sub_lock = asyncio.Lock()
        self.start_time: Any = None
        """The server's ``ServerStatus.StartTime`` at the last connection (None: unknown)."""
        self._restarted = ""
        """Why the next request raises InstrumentRestartedError ("" when it does not)."""
        self._timeouts = 0
        """Requests timed out in a row on this connection."""
        self.restarts = 0
        """How many server restarts reconnections have seen."""
        self.link_state = LinkState(device)
        """Down while the server does not accept a connection (the policy layer's
        suspenders watch it); see :mod:`couponlab.transports._link_state`."""

    # -- connection ----------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        """Return whether the client is connected now."""
        return self._client is not None

    @property
    def client(self) -> Client | None:
        """Return the asyncua client while connected (``None`` otherwise); for test spies."""
        return self._client

    @property
    def namespace_index(self) -> int:
        """Return the index of :attr:`namespace_uri` on the server (after connecting)."""
        return self._ns

    async def connect(self) -> None:
        """Connect (idempotent), retrying with back-off.

        Raises
        ------
        ConnectionLostError
            No connection after ``backoff.attempts`` attempts.
        ProtocolError
            The server does not serve :attr:`namespace_uri`.
        """
        self._closed = False
        await self._ensure()

    async def reconnect(self) -> None:
        """Try to re-open a link that is down (what a link watch does while a plan waits);
        a restart found is raised by the next request, as after any reconnection.

        Raises
        ------
        ConnectionLostError
            The link could not be opened (:attr:`link_state` stays down).
        """
        await self.connect()

    async def disconnect(self) -> None:
        """Close the subscription and the client; cancel pending subscription work."""
        self._closed = True
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        for handle in self._monitors:
            _retire(handle)
        async with self._lock:
            await self._drop(delete_subscription=True)

    async def _ensure(self) -> Client:
        client = self._client
        if client is not None:
            return client
        async with self._lock:
            if self._client is not None:
                return self._client
            if self._closed:
                raise ConnectionLostError(self.device, f"connection to {self.url} was closed")
            return await self._open_with_backoff()

    async def _open_with_backoff(self) -> Client:
        attempts = 0
        try:
            async for attempt in self.backoff.retrying():
                with attempt:
                    attempts += 1
                    try:
                        client = await self._open_link()
                    except (OSError, TimeoutError) as exc:
                        cause = exc.__cause__ if isinstance(exc, _LinkDownError) else exc
                        self.link_state.set(False, f"cannot connect to {self.url}: {cause!r}")
                        raise
        except (OSError, TimeoutError) as exc:
            cause = exc.__cause__ if isinstance(exc, _LinkDownError) else exc
            raise ConnectionLostError(
                self.device,
                f"cannot connect to {self.url} after {attempts} attempts: {cause!r}",
            ) from exc
        if self.generation > 1 or attempts > 1:
            log.info("%s: connected to %s after %d attempt(s)", self.device, self.url, attempts)
        self.link_state.set(True)
        return client

    async def _open_link(self) -> Client:
        """One attempt; an OPC UA error of the link becomes an ``OSError`` (retried)."""
        try:
            return await self._open_once()
        except (ProtocolError, AccessDeniedError, InputError):
            raise
        except UaError as exc:
            raise _LinkDownError(str(exc)) from exc

    async def _open_once(self) -> Client:
        # asyncua's supervisor probes the server every watchdog interval and declares the
        # link lost if a probe takes longer than that interval: keep it well above a busy
        # moment of a shared machine (requests detect a dead link by themselves anyway).
        client = Client(
            self.url,
            timeout=BACKSTOP_FACTOR * self.timeout,
            watchdog_intervall=max(5.0, 2 * self.timeout),
        )
        client.session_timeout = SESSION_TIMEOUT_MS
        try:
            if self.security is not None:  # asks the server for its certificate first
                async with reply_deadline(self.timeout):
                    await self.security.apply(client, self.device)
            async with reply_deadline(self.timeout):
                await client.connect()
        except UaStatusCodeError as exc:
            await _close_client(client)
            denied = await self._access_denied(client, exc.code)
            if denied is not None:
                raise denied from exc
            raise
        except UaError as exc:
            await _close_client(client)
            if "No matching endpoints" in str(exc):
                policy = "Basic256Sha256 SignAndEncrypt" if self.security else "NoSecurity"
                raise AccessDeniedError(
                    self.device,
                    f"{self.url} offers no {policy} endpoint: set the lab entry's "
                    "settings.security to what the instrument offers",
                ) from exc
            raise
        except BaseException:
            await _close_client(client)
            raise
        try:
            async with reply_deadline(self.timeout):
                ns = await client.get_namespace_index(self.namespace_uri)
        except ValueError:
            await _close_client(client)
            raise ProtocolError(
                self.device, f"{self.url} does not serve namespace {self.namespace_uri!r}"
            ) from None
        except BaseException:
            await _close_client(client)
            raise
        await self._note_start_time(client)
        client.connection_lost_callback = self._on_connection_lost
        self._client, self._ns = client, ns
        self._nodes.clear()
        self.generation += 1
        if self._monitors:
            try:
                await self._restore_monitors(client)
            except (OSError, TimeoutError, UaError) as exc:
                log.warning("%s: could not restore subscriptions: %r", self.device, exc)
        return client

    async def _access_denied(self, client: Client, code: int) -> AccessDeniedError | None:
        """Return the typed error of a refusal of who we are (None: another failure)."""
        name = status_name(code)
        if code in _USER_CODES:
            who = (
                f"user {self.security.user!r}"
                if self.security and self.security.user
                else ("an anonymous session")
            )
            return AccessDeniedError(
                self.device,
                f"{self.url} refused {who} ({name}): wrong user name or password, or a "
                "session the instrument does not allow",
            )
        if self.security is None or code not in _TRUST_CODES | _CERT_CODES:
            return None
        pki = self.security.pki
        peer = client.security_policy.peer_certificate
        if code in _TRUST_CODES and peer and not await pki.trusts(peer):
            saved = pki.reject(peer)
            return AccessDeniedError(
                self.device,
                f"the certificate of {self.url} is not trusted ({name}); it was saved as "
                f"{saved}: if it is this instrument's, move it into {pki.trusted}",
            )
        return AccessDeniedError(
            self.device,
            f"{self.url} refused this client's certificate ({name}): add "
            f"{pki.trusted / 'couponlab-client.der'} to the instrument's trusted certificates",
        )

    async def _note_start_time(self, client: Client) -> None:
        """Read the server's start time; a new one on a reconnection is a restart."""
        node = client.get_node(ua.NodeId(cast(Any, ObjectIds.Server_ServerStatus_StartTime)))
        try:
            async with reply_deadline(self.timeout):
                start = await node.read_value()
        except (UaError, OSError, TimeoutError) as exc:
            log.warning("%s: cannot read the server's start time: %r", self.device, exc)
            return
        if self.start_time is not None and start != self.start_time:
            self.restarts += 1
            self._restarted = f"{self.url}: server start time {self.start_time} -> {start}"
            log.warning("%s: the instrument restarted (%s)", self.device, self._restarted)
        self.start_time = start

    def _raise_if_restarted(self) -> None:
        if self._restarted:
            evidence, self._restarted = self._restarted, ""
            raise InstrumentRestartedError(self.device, evidence)

    async def _drop(self, *, delete_subscription: bool = False) -> None:
        """Forget the client (the next request reconnects). Call with ``_lock`` held."""
        client, sub = self._client, self._subscription
        self._client, self._subscription = None, None
        self._nodes.clear()
        for mon in self._monitors.values():
            mon.handle = None
        if client is None:
            return
        if sub is not None and delete_subscription:
            with contextlib.suppress(Exception):
                async with reply_deadline(self.timeout):
                    await sub.delete()
        await _close_client(client, self.timeout)

    async def _on_connection_lost(self, exc: Exception) -> None:
        log.warning("%s: link to %s lost: %r", self.device, self.url, exc)
        self._spawn(self._reconnect_after_loss())

    async def _reconnect_after_loss(self) -> None:
        async with self._lock:
            if self._client is not None:
                await self._drop()
                self.reconnects += 1
        if self._monitors and not self._closed:
            # subscribers are waiting for values: reconnect now, not at the next request
            with contextlib.suppress(ConnectionLostError, ProtocolError):
                await self._ensure()

    # -- nodes and requests --------------------------------------------------------------
    def node_id(self, string_id: str) -> ua.NodeId:
        """Return the node id ``ns=<index>;s=<string_id>`` (after connecting)."""
        return ua.NodeId(cast(Any, string_id), cast(Any, self._ns))

    def node(self, string_id: str) -> Node:
        """Return the (cached) node object of a string id on the current client."""
        node = self._nodes.get(string_id)
        if node is None:
            if self._client is None:
                raise ConnectionLostError(self.device, f"not connected to {self.url}")
            node = self._client.get_node(self.node_id(string_id))
            self._nodes[string_id] = node
        return node

    async def request(
        self,
        what: str,
        operation: Callable[[Client], Awaitable[T]],
        *,
        idempotent: bool,
        timeout: float | None = None,
    ) -> T:
        """Run one request on the client with a timeout and typed errors.

        Parameters
        ----------
        what
            Description of the request for messages ("read Furnace.Profile").
        operation
            Coroutine function taking the connected client.
        idempotent
            Retry once on a fresh connection if the link dropped (reads only).
        timeout
            Timeout of this request, s (default :attr:`timeout`).
        """
        t = self.timeout if timeout is None else timeout
        for attempt in (1, 2):
            client = self._client or await self._ensure()
            self._raise_if_restarted()
            try:
                result = await _within(t, operation(client))
                self._timeouts = 0
                return result
            except TimeoutError as exc:
                # One late reply on a busy machine does not cost the link (OPC UA matches a
                # reply to its request); two in a row mean the stream is out of step (a
                # garbled or cut message whose length never arrives) or the server is gone:
                # drop the link and, for a read, retry once on a fresh one.
                self._timeouts += 1
                if self._timeouts >= 2:
                    self._timeouts = 0
                    await self._lost(client)
                    if idempotent and attempt == 1:
                        log.warning("%s: %s timed out twice; reconnecting", self.device, what)
                        continue
                note = str(exc) if str(exc).startswith("; ") else ""  # from _within
                raise InstrumentTimeoutError(
                    self.device, f"no reply to {what} from {self.url} within {t:g} s{note}"
                ) from exc
            except UaStatusCodeError as exc:
                if exc.code not in _LINK_CODES:
                    raise OpcUaStatusError(self.device, what, status_name(exc.code)) from exc
                lost: BaseException = exc
            except (ConnectionError, OSError) as exc:
                lost = exc
            except asyncio.CancelledError as exc:
                task = asyncio.current_task()
                if task is None or task.cancelling():
                    raise  # this request itself was cancelled
                lost = exc  # the client was closed under it (the link was dropped meanwhile)
            except UaError as exc:
                raise ProtocolError(self.device, f"{what}: {exc}") from exc
            await self._lost(client)
            if idempotent and attempt == 1:
                log.warning("%s: link lost during %s, retrying once", self.device, what)
                continue
            raise ConnectionLostError(
                self.device, f"link to {self.url} lost during {what}: {lost!r}"
            ) from lost
        raise AssertionError("unreachable")  # pragma: no cover

    async def _lost(self, client: Client) -> None:
        async with self._lock:
            if self._client is client:
                await self._drop()
                self.reconnects += 1

    async def read(self, string_ids: Sequence[str], what: str = "") -> list[ua.DataValue]:
        """Read the values of several nodes in ONE request; raise on any Bad status."""
        ids = list(string_ids)

        async def op(client: Client) -> list[ua.DataValue]:
            nodes = [self.node_id(s) for s in ids]
            return await client.uaclient.read_attributes(nodes, AttributeIds.Value)

        label = what or f"read {', '.join(ids)}"
        values = await self.request(label, op, idempotent=True)
        for sid, dv in zip(ids, values, strict=True):
            check_good(self.device, f"read {sid}", dv)
        return values

    async def write(self, string_id: str, variant: ua.Variant) -> None:
        """Write one node's value (never retried)."""

        async def op(client: Client) -> None:
            node = self.node(string_id)
            await node.write_attribute(AttributeIds.Value, ua.DataValue(variant))

        await self.request(f"write {string_id}", op, idempotent=False)

    async def call(self, object_id: str, method_id: str, args: Sequence[ua.Variant]) -> Any:
        """Call a method of an object (never retried); return its output (if any)."""

        async def op(client: Client) -> Any:
            obj = self.node(object_id)
            return await obj.call_method(self.node_id(method_id), *args)

        return await self.request(f"call {method_id}()", op, idempotent=False)

    # -- subscriptions -------------------------------------------------------------------
    def monitor(self, string_id: str, callback: DataCallback) -> int:
        """Start delivering data changes of a node to ``callback``; return a handle.

        Works from synchronous code (ophyd-async's ``set_callback``): the monitored item is
        created in a task that the connection tracks and cancels at :meth:`disconnect`.
        """
        handle = next(_CLIENT_HANDLES)
        self._monitors[handle] = _Monitor(string_id, callback)
        self._spawn(self._add_monitor(handle))
        return handle

    def unmonitor(self, handle: int) -> None:
        """Stop a monitor started with :meth:`monitor`."""
        mon = self._monitors.pop(handle, None)
        _retire(handle)
        if mon is not None and mon.handle is not None:
            self._spawn(self._remove_item(mon.handle))

    def _spawn(self, coro: Awaitable[None]) -> None:
        async def run() -> None:
            try:
                await coro
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s: subscription work failed", self.device)

        task = asyncio.get_running_loop().create_task(run(), name=f"{self.device}-opcua")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _subscription_for(self, client: Client) -> Subscription:
        if self._subscription is None:
            self._subscription = await client.create_subscription(
                self.publishing_interval * 1000.0, _Handler(self)
            )
        return self._subscription

    async def _add_monitor(self, handle: int) -> None:
        async with self._sub_lock:
            mon = self._monitors.get(handle)
            if mon is None:
                return
            client = await self._ensure()
            await self._create_item(client, handle, mon)
            if handle not in self._monitors and mon.handle is not None:
                # unmonitored while the server created it (its first value may already have
                # come): nobody removed it, as it had no server handle yet
                await self._unsubscribe(mon.handle)

    async def _create_item(self, client: Client, handle: int, mon: _Monitor) -> None:
        async with reply_deadline(self.timeout):
            sub = await self._subscription_for(client)
            params = ua.MonitoringParameters()
            params.ClientHandle = handle
            params.SamplingInterval = 0.0
            params.QueueSize = 1
            params.DiscardOldest = True
            req = ua.MonitoredItemCreateRequest()
            req.ItemToMonitor = ua.ReadValueId(
                NodeId=self.node_id(mon.string_id), AttributeId=AttributeIds.Value
            )
            req.MonitoringMode = ua.MonitoringMode.Reporting
            req.RequestedParameters = params
            results = await sub.create_monitored_items([req])
        server_handle = results[0]
        if isinstance(server_handle, ua.StatusCode):
            raise OpcUaStatusError(
                self.device, f"monitor {mon.string_id}", status_name(server_handle)
            )
        mon.handle = int(server_handle)

    async def _remove_item(self, server_handle: int) -> None:
        async with self._sub_lock:
            await self._unsubscribe(server_handle)

    async def _unsubscribe(self, server_handle: int) -> None:
        """Delete a monitored item (call with ``_sub_lock`` held); a lost link deletes it."""
        sub = self._subscription
        if sub is None:
            return
        with contextlib.suppress(UaError, OSError, TimeoutError):
            async with reply_deadline(self.timeout):
                await sub.unsubscribe(server_handle)

    async def _restore_monitors(self, client: Client) -> None:
        for handle, mon in list(self._monitors.items()):
            await self._create_item(client, handle, mon)

    def dispatch(self, client_handle: int, value: ua.DataValue) -> None:
        """Deliver a data change to the monitor of ``client_handle`` (subscription handler)."""
        mon = self._monitors.get(client_handle)
        if mon is not None:
            mon.callback(value)


def check_good(device: str, what: str, dv: ua.DataValue) -> None:
    """Raise :class:`OpcUaStatusError` if a DataValue carries a Bad status."""
    code = dv.StatusCode
    if code is not None and code.is_bad():
        raise OpcUaStatusError(device, what, status_name(code))


def source_timestamp(dv: ua.DataValue) -> float:
    """Return the DataValue's source (else server) timestamp as POSIX seconds."""
    stamp = dv.SourceTimestamp or dv.ServerTimestamp
    return stamp.timestamp() if stamp is not None else time.time()


async def _within(timeout: float, awaitable: Awaitable[T]) -> T:
    """Await ``awaitable`` for at most ``timeout`` s of this loop's time (its own stalls not
    counted: :func:`~couponlab.transports._deadline.reply_deadline`); raise TimeoutError when
    it runs out.

    ``asyncio.timeout`` (Python 3.11, which ``reply_deadline`` wraps) turns into TimeoutError
    only a CancelledError that is exactly that class. asyncua waits for each reply with
    ``wait_for2``, which raises its subclass ``CancelledWithResultError`` when the reply
    arrives just as the wait is cancelled: a late reply on a busy machine. It escaped as a
    bare CancelledError with the task's cancellation already consumed, and was taken for a
    link closed under the request (a ConnectionLostError in the middle of a furnace hold).
    Here it is the timeout it is. A TimeoutError's text is "" or :func:`stall_note`'s.
    """
    deadline = reply_deadline(timeout)
    try:
        async with deadline:
            return await awaitable
    except TimeoutError as exc:
        raise TimeoutError(stall_note(deadline)) from exc
    except asyncio.CancelledError as exc:
        task = asyncio.current_task()
        if deadline.expired() and task is not None and not task.cancelling():
            # our deadline, not a cancellation of this request
            raise TimeoutError(stall_note(deadline)) from exc
        raise


async def _close_client(client: Client, timeout: float = 2.0) -> None:
    """Disconnect a client whatever state it is in; never raises."""
    try:
        async with reply_deadline(timeout):
            await client.disconnect()
    except Exception:
        log.debug("disconnect failed; closing the socket", exc_info=True)
        with contextlib.suppress(Exception):
            client.disconnect_socket()
    for name in ("_supervisor_task", "_stale_watchdog_task", "_renew_channel_task"):
        task = getattr(client, name, None)
        if isinstance(task, asyncio.Task) and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


__all__ = [
    "DataCallback",
    "OpcUaConnection",
    "OpcUaStatusError",
    "check_endpoint",
    "check_good",
    "source_timestamp",
    "status_name",
]
