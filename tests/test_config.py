"""Node config files: strict reading, only ConfigError on anything malformed."""

from __future__ import annotations

import contextlib
import pathlib
import tempfile

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sequencer_net.node.config import MAX_CONFIG_BYTES, ConfigError, NodeConfig


def test_round_trip_with_paths_relative_to_the_file(tmp_path: pathlib.Path) -> None:
    config = NodeConfig(
        tmp_path / "g.json", tmp_path / "k.json", tmp_path / "d.db", policy="arrival"
    )
    path = tmp_path / "node.toml"
    path.write_text(config.to_toml(tmp_path))
    assert NodeConfig.load(path) == config


def test_oversized_config_is_refused_before_parsing(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "big.toml"
    path.write_bytes(b"#" * (MAX_CONFIG_BYTES + 1))
    with pytest.raises(ConfigError, match="larger than"):
        NodeConfig.load(path)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300) | st.text(max_size=200).map(str.encode))
def test_arbitrary_bytes_raise_only_config_error(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = pathlib.Path(d) / "node.toml"
        path.write_bytes(data)
        with contextlib.suppress(ConfigError):
            NodeConfig.load(path)


def test_a_listen_address_that_is_not_a_string_is_refused(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "node.toml"
    path.write_text('genesis = "g"\nkeys = "k"\ndatabase = "d"\nlisten = 0\n')
    with pytest.raises(ConfigError, match="listen"):
        NodeConfig.load(path)
