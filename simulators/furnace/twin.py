"""Start and stop the furnace twin for a lab entry: the model on the world's clock plus its
OPC UA server (``start_twin`` is what ``simulators/registry.py`` names)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from pydantic import ValidationError

from couponlab.labfile import DeviceEntry
from couponlab.registry import TwinSpec
from couponlab.simulators.bind_host import check_bind_host
from couponlab.simulators.furnace.config import FurnaceConfig
from couponlab.simulators.furnace.faults import FurnaceFaults
from couponlab.simulators.furnace.model import FurnaceModel
from couponlab.simulators.furnace.server import FurnaceServer
from couponlab.simulators.opcua_security import Role, ServerSecurity
from couponlab.simulators.world import World
from couponlab.transports import OpcUaSecuritySettings, Pki


class FurnaceTwin:
    """A running furnace twin: the model on the world's clock and its OPC UA server.

    Attributes
    ----------
    address
        ``opc.tcp://127.0.0.1:<port>`` with the real port.
    model
        The :class:`FurnaceModel` (touch it only on the twins' thread).
    server
        The :class:`FurnaceServer`.
    faults
        Its :class:`FurnaceFaults`, registered on ``world.faults`` under the device name.
    """

    def __init__(self, model: FurnaceModel, server: FurnaceServer) -> None:
        self.model = model
        self.server = server
        self.address = server.address
        self.faults = FurnaceFaults(server, model)
        model.world.faults.register(model.name, self.faults)

    async def stop(self) -> None:
        """Stop serving, then stop the model (coupon off the carrier, unregistered)."""
        self.model.world.faults.unregister(self.model.name)
        await self.faults.close()
        await self.server.stop()
        self.model.stop()


def _host_port(address: str) -> tuple[str, int]:
    parts = urlsplit(address)
    if parts.scheme != "opc.tcp" or not parts.hostname:
        raise ValueError(f"furnace twin address {address!r} must be opc.tcp://host:port")
    check_bind_host(parts.hostname, f"furnace twin address {address!r}")
    return parts.hostname, parts.port or 0


def _role(anonymous: str) -> Role | None:
    return "operator" if anonymous == "operator" else "viewer" if anonymous == "viewer" else None


def _security_settings(entry: DeviceEntry) -> OpcUaSecuritySettings | None:
    raw = entry.settings.get("security")
    return OpcUaSecuritySettings.model_validate(raw) if raw is not None else None


def check_entry(entry: DeviceEntry, config: FurnaceConfig) -> list[tuple[str, str]]:
    """Return ``(key, problem)`` for what the twin of ``entry`` could not serve: accounts
    without a secure endpoint, or a driver login that is not one of the accounts."""
    try:
        settings = _security_settings(entry)
    except ValidationError:
        return []  # reported with the driver's settings
    if settings is None or settings.policy == "None":
        if config.users:
            return [
                (
                    "twin_config.users",
                    "accounts need settings.security.policy Basic256Sha256_SignAndEncrypt "
                    "(no password over a channel in clear)",
                )
            ]
        return []
    if settings.user is not None and settings.user not in config.users:
        known = ", ".join(config.users) or "none"
        return [
            (
                "settings.security.user",
                f"{settings.user!r} is not an account of the twin (twin_config.users: {known})",
            )
        ]
    return []


def server_security(entry: DeviceEntry, config: FurnaceConfig) -> ServerSecurity:
    """Return the security of the twin of ``entry``: the endpoint policy and certificate
    folder of ``settings.security`` (the instrument the lab file describes), the accounts
    and anonymous role of ``twin_config`` (a missing password file of an account is made
    with a random password).

    Raises
    ------
    ValueError
        What :func:`check_entry` finds.
    """
    problems = check_entry(entry, config)
    if problems:
        key, problem = problems[0]
        raise ValueError(f"{entry.name}: {key}: {problem}")
    settings = _security_settings(entry)
    anonymous: Role | None
    if settings is None or settings.policy == "None":
        anonymous = "operator" if config.anonymous is None else _role(config.anonymous)
        return ServerSecurity(secure=False, anonymous=anonymous)
    accounts = {
        name: (account.credential().read_or_create(entry.name), account.role)
        for name, account in config.users.items()
    }
    anonymous = None if config.anonymous is None else _role(config.anonymous)
    pki = Pki(Path(settings.pki_dir).expanduser()) if settings.pki_dir else Pki.default()
    return ServerSecurity(secure=True, pki=pki, accounts=accounts, anonymous=anonymous)


async def start_twin(world: World, entry: DeviceEntry) -> FurnaceTwin:
    """Start a furnace twin for a lab entry (``twin_config`` -> :class:`FurnaceConfig`;
    its ``carrier_slots`` defaults to the entry's ``settings.carrier_slots``; its security
    follows :func:`server_security`).

    Binds the host and port of ``entry.address`` (0 picks a free port);
    :func:`~couponlab.simulators.lab_twins.start_lab_twins` sets that host to its bind host
    (127.0.0.1 unless ``couponlab twin serve --bind``). The returned twin's ``address`` has
    the real port.
    """
    twin_config = dict(entry.twin_config)
    if "carrier_slots" in entry.settings:  # the instrument the lab file describes
        twin_config.setdefault("carrier_slots", entry.settings["carrier_slots"])
    config = FurnaceConfig.from_twin_config(twin_config)
    host, port = _host_port(entry.address)
    security = server_security(entry, config)
    model = FurnaceModel(world, config, entry.name)
    model.start()
    server = FurnaceServer(
        world,
        model,
        host=host,
        port=port,
        publish_period_s=config.publish_period_s,
        security=security,
    )
    try:
        await server.start()
    except BaseException:
        await server.stop()
        model.stop()
        raise
    return FurnaceTwin(model, server)


TWIN = TwinSpec(start_twin, FurnaceConfig, ("opc.tcp",), check_entry)
"""The furnace twin, as the ``couponlab.twins`` entry point names it."""


__all__ = ["TWIN", "FurnaceTwin", "check_entry", "server_security", "start_twin"]
