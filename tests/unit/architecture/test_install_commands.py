"""A fresh install is what CI tests: README's two first commands and .ci/run install the same
way (pinned by constraints.txt) and run the same test command; the pins cover every
dependency pyproject.toml names and satisfy its ranges."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[3]
INSTALL = '.venv/bin/pip install -q -c constraints.txt -e ".[dev]"'
TEST = ".venv/bin/python -m pytest tests hil --lab src/couponlab/labs/sim_lab.yaml"


def _readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = re.search(r"\A# couponlab\n\n```bash\n(.*?)\n```", text, re.DOTALL)
    assert block, "README.md must start with its title and a bash block of two commands"
    return block.group(1).splitlines()


def _pins() -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, sep, version = line.partition("==")
            assert sep and version, f"constraints.txt: not an exact pin: {line!r}"
            pins[canonicalize_name(name)] = version
    return pins


def test_readme_starts_with_the_campaign_and_the_test_command_both_pinned() -> None:
    main_job, tests = _readme_commands()
    assert main_job == (
        "python3 -m venv .venv && .venv/bin/pip install -q -c constraints.txt -e . "
        "&& .venv/bin/couponlab campaign run"
    )
    assert tests == f"python3 -m venv .venv && {INSTALL} && {TEST}"


def test_ci_installs_and_tests_as_readme_says() -> None:
    lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    _, tests = _readme_commands()
    venv, install, test = tests.split(" && ")
    assert venv in lines
    assert install in lines
    assert test in lines
    assert lines[-1] == test, ".ci/run ends with README's test command (its exit code is CI's)"
    latest = [line for line in lines if "--upgrade" in line and "pip install" in line]
    assert latest == ['.venv/bin/pip install -q --upgrade --upgrade-strategy eager -e ".[dev]"'], (
        "COUPONLAB_LATEST=1 installs without constraints, upgrading"
    )


def test_constraints_pin_every_dependency_within_its_range() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = [Requirement(r) for r in project["dependencies"]]
    for extra in project["optional-dependencies"].values():
        declared += [Requirement(r) for r in extra]
    pins = _pins()
    assert "couponlab" not in pins
    for req in declared:
        name = canonicalize_name(req.name)
        if name == "couponlab" or (req.marker and not req.marker.evaluate()):
            continue
        assert name in pins, f"constraints.txt does not pin {req.name}"
        assert req.specifier.contains(pins[name], prereleases=True), (
            f"constraints.txt pins {req.name}=={pins[name]}, outside {req.specifier}"
        )
