"""A network's files: genesis, key files, one node config and one database per validator.

Written by ``seqnet keygen`` and ``seqnet cluster up`` (trusted dealer), and by
the benchmark. Every file is private to its owner whatever the umask, except
the genesis, which is public but not writable by others. The databases are
created here, so a validator that later finds its database missing or empty
knows it has lost state rather than being new.

Read back here too (:func:`members`): the layout is decided in one place, and
``seqnet submit`` and the cluster tooling find each validator's addresses in
its config without knowing how the directory was written.
"""

from __future__ import annotations

import os
import pathlib
import secrets
from dataclasses import dataclass

from sequencer_net.node import genesis as gen
from sequencer_net.node.config import ConfigError, NodeConfig
from sequencer_net.node.storage import StorageError, Store

API_PORT_OFFSET = 1000  # validator i serves its HTTP API on base-port + 1000 + i
METRICS_PORT_OFFSET = 2000  # and /metrics on base-port + 2000 + i
ADMIN_PORT_OFFSET = 3000  # and, on a test network, its admin endpoint on base-port + 3000 + i
ADMIN_TOKEN_FILE = "admin-token"  # a test network's admin token, shared by its validators


class NetworkFilesError(RuntimeError):
    """The network's files could not be written or read (one line for the operator)."""


def write_network(
    directory: pathlib.Path,
    nodes: int,
    *,
    chain_id: str = "seqnet-local",
    namespaces: tuple[str, ...] = ("rollup-a", "rollup-b"),
    host: str = "127.0.0.1",
    base_port: int = 7100,
    force: bool = False,
    test_network: bool = False,
) -> gen.Genesis:
    """Genesis, key files, and per validator a config (API and metrics ports) and a database.

    ``force`` replaces an existing network: its databases are deleted, their
    history means nothing to the new keys. ``test_network``: the genesis says
    so, and each validator gets an admin endpoint on 127.0.0.1 behind a token
    written to ``ADMIN_TOKEN_FILE`` (faults and misbehaviour for chaos tests).
    """
    params = {gen.TEST_NETWORK_PARAM: 1} if test_network else {}
    try:
        genesis, keys = gen.create(
            nodes,
            chain_id=chain_id,
            namespaces=namespaces,
            host=host,
            base_port=base_port,
            params=params,
        )
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        gen.write(directory, genesis, keys, force=force)
        (directory / "genesis.json").chmod(0o644)
        token = directory / ADMIN_TOKEN_FILE
        if test_network:
            write_private(token, secrets.token_hex(32))
        for k in keys:
            config = NodeConfig(
                directory / "genesis.json",
                directory / f"node-{k.index}.key.json",
                directory / f"node-{k.index}.db",
                api=f"{host}:{base_port + API_PORT_OFFSET + k.index}",
                metrics=f"{host}:{base_port + METRICS_PORT_OFFSET + k.index}",
                admin=f"127.0.0.1:{base_port + ADMIN_PORT_OFFSET + k.index}"
                if test_network
                else None,
                admin_token_file=token if test_network else None,
            )
            write_private(directory / f"node-{k.index}.toml", config.to_toml(directory))
            if force:
                remove_database(config.database)
            Store(config.database, chain_id).close()
    except (gen.GenesisError, StorageError, OSError) as exc:
        raise NetworkFilesError(str(exc)) from None
    return genesis


def write_private(path: pathlib.Path, text: str) -> None:
    """Write a file only its owner can read, whatever the umask."""
    fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    path.chmod(0o600)


def remove_database(path: pathlib.Path) -> None:
    """A node's SQLite database with its write-ahead log and shared-memory file."""
    for suffix in ("", "-wal", "-shm"):
        pathlib.Path(f"{path}{suffix}").unlink(missing_ok=True)


@dataclass(frozen=True, slots=True)
class Member:
    """One validator of a network directory: its config and the addresses it serves."""

    index: int
    config: pathlib.Path
    api: str
    metrics: str
    listen: str
    admin: str | None = None  # test networks only


def members(directory: pathlib.Path) -> list[Member]:
    """The validators whose configs ``seqnet keygen`` wrote into ``directory``."""
    configs = config_paths(directory)
    genesis = read_genesis(directory)
    out = []
    for i, path in enumerate(configs):
        try:
            config = NodeConfig.load(path)
        except ConfigError as exc:
            raise NetworkFilesError(str(exc)) from None
        if not config.api:
            raise NetworkFilesError(f"{path}: no api address, so the cluster cannot watch it")
        listen = config.listen or genesis.validators[i].address
        out.append(Member(i, path, config.api, config.metrics or "", listen, config.admin))
    return out


def config_paths(directory: pathlib.Path) -> list[pathlib.Path]:
    """``node-<i>.toml`` in ``directory``, validator i at position i."""
    configs = sorted(directory.glob("node-*.toml"), key=lambda p: int(p.stem.split("-")[1]))
    if not configs:
        raise NetworkFilesError(f"{directory}: no node-<i>.toml (run `seqnet cluster up` first)")
    return configs


def read_genesis(directory: pathlib.Path) -> gen.Genesis:
    """The ``genesis.json`` of a network directory."""
    try:
        return gen.load_genesis(directory / "genesis.json")
    except gen.GenesisError as exc:
        raise NetworkFilesError(str(exc)) from None
