"""Node configuration: a small TOML file, every path relative to the file itself.

```toml
genesis = "genesis.json"
keys = "node-0.key.json"
database = "node-0.db"
# listen = "/ip4/127.0.0.1/tcp/7100"   # default: this validator's address in genesis
# api = "127.0.0.1:8100"                # HTTP API (default: none)
# metrics = "127.0.0.1:9100"            # Prometheus /metrics (default: none)
# base_timeout_ms = 1000
# heartbeat_ms = 250                    # an idle leader proposes this often
# policy = "median-timestamp"
```
"""

from __future__ import annotations

import ipaddress
import pathlib
import tomllib
from dataclasses import dataclass
from typing import Any

from ordering.fair.policies import DEFAULT_POLICY
from ordering.pacemaker import BASE_TIMEOUT_MS

MAX_CONFIG_BYTES = 64 * 1024
HEARTBEAT_MS = 250  # an idle leader proposes this often


class ConfigError(ValueError):
    """A config file that is missing, malformed, or names something unknown."""


@dataclass(frozen=True, slots=True)
class NodeConfig:
    genesis: pathlib.Path
    keys: pathlib.Path
    database: pathlib.Path
    listen: str | None = None
    base_timeout_ms: int = BASE_TIMEOUT_MS
    policy: str = DEFAULT_POLICY
    api: str | None = None
    metrics: str | None = None
    heartbeat_ms: int = HEARTBEAT_MS
    # test networks only (the genesis must say test_network = 1; see node.admin)
    admin: str | None = None  # loopback host:port of the admin endpoint
    admin_token_file: pathlib.Path | None = None
    misbehaviour: dict[str, Any] | None = None  # node.byzantine.Misbehaviour fields

    @classmethod
    def load(cls, path: pathlib.Path) -> NodeConfig:
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"{path}: {exc.strerror}") from None
        if len(raw) > MAX_CONFIG_BYTES:
            raise ConfigError(f"{path}: larger than {MAX_CONFIG_BYTES} bytes")
        try:
            data: dict[str, Any] = tomllib.loads(raw.decode())
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: not TOML ({exc})") from None
        known = {
            "genesis",
            "keys",
            "database",
            "listen",
            "base_timeout_ms",
            "policy",
            "api",
            "metrics",
            "heartbeat_ms",
            "admin",
            "admin_token_file",
            "misbehaviour",
        }
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"{path}: unknown setting(s) {', '.join(unknown)}")
        base = path.parent
        try:
            return cls(
                genesis=base / _text(data, "genesis"),
                keys=base / _text(data, "keys"),
                database=base / _text(data, "database"),
                listen=_text(data, "listen") if "listen" in data else None,
                base_timeout_ms=_positive(
                    data.get("base_timeout_ms", BASE_TIMEOUT_MS), "base_timeout_ms"
                ),
                policy=_text(data, "policy") if "policy" in data else DEFAULT_POLICY,
                api=_address(data, "api"),
                metrics=_address(data, "metrics"),
                heartbeat_ms=_positive(data.get("heartbeat_ms", HEARTBEAT_MS), "heartbeat_ms"),
                **_test_network_settings(data, base),
            )
        except KeyError as exc:
            raise ConfigError(f"{path}: missing setting {exc}") from None

    def to_toml(self, relative_to: pathlib.Path) -> str:
        def rel(p: pathlib.Path) -> str:
            return str(p.relative_to(relative_to)) if p.is_relative_to(relative_to) else str(p)

        lines = [
            f'genesis = "{rel(self.genesis)}"',
            f'keys = "{rel(self.keys)}"',
            f'database = "{rel(self.database)}"',
            f"base_timeout_ms = {self.base_timeout_ms}",
            f'policy = "{self.policy}"',
        ]
        for key in ("listen", "api", "metrics", "admin"):
            value = getattr(self, key)
            if value:
                lines.append(f'{key} = "{value}"')
        if self.admin_token_file is not None:
            lines.append(f'admin_token_file = "{rel(self.admin_token_file)}"')
        return "\n".join(lines) + "\n"


def _test_network_settings(data: dict[str, Any], base: pathlib.Path) -> dict[str, Any]:
    """``admin``, its token file, ``misbehaviour``: checked here, allowed by the genesis later."""
    admin = _address(data, "admin")
    if admin is not None:
        if not _is_loopback(admin):
            raise ConfigError(f"admin: {admin} is not a loopback address (127.0.0.1 or ::1)")
        if "admin_token_file" not in data:
            raise ConfigError("admin: needs admin_token_file (the token every request carries)")
    token = base / _text(data, "admin_token_file") if "admin_token_file" in data else None
    misbehaviour = data.get("misbehaviour")
    if misbehaviour is not None and not isinstance(misbehaviour, dict):
        raise ConfigError("misbehaviour: expected a table, e.g. {withhold_shares = true}")
    return {"admin": admin, "admin_token_file": token, "misbehaviour": misbehaviour}


def _is_loopback(address: str) -> bool:
    host = address.rpartition(":")[0].strip("[]")
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _text(data: dict[str, Any], key: str) -> str:
    value = data[key]
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{key}: expected a non-empty string")
    return value


def _address(data: dict[str, Any], key: str) -> str | None:
    """``host:port`` or None when unset."""
    if key not in data:
        return None
    value = _text(data, key)
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ConfigError(f"{key}: expected host:port, got {value!r}")
    return value


def _positive(value: Any, key: str) -> int:
    if type(value) is not int or value < 1:
        raise ConfigError(f"{key}: expected a positive integer")
    return value
