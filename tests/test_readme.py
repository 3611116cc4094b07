"""The README's two opening commands are exactly what CI runs."""

from __future__ import annotations

import pathlib
import re

ROOT = pathlib.Path(__file__).parent.parent


def test_ci_runs_the_readme_commands_verbatim() -> None:
    blocks = re.findall(r"```sh\n(.*?)\n```", (ROOT / "README.md").read_text(), re.S)
    install_and_run, run_tests = blocks[0], blocks[1]
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert install_and_run in ci and run_tests in ci
