"""Where a session stores its runs: the lab file's Tiled server, its API key from the
environment or a file (never from the lab file), else the embedded store in the output folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from couponlab.errors import InputError
from couponlab.labfile import LabFile, LabFileError, parse_lab
from couponlab.session import store_location

SERVER = "name: l\ndevices: []\nstore:\n  uri: http://127.0.0.1:8000/api\n"


def test_no_store_section_is_the_embedded_store_of_the_output_folder(tmp_path: Path) -> None:
    where = store_location(LabFile(name="l", devices=[]), tmp_path)
    assert where.embedded
    assert where.out_dir == tmp_path.absolute()


def test_the_api_key_comes_from_the_named_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lab = parse_lab(SERVER + "  api_key_env: LAB_TILED_KEY\n")
    monkeypatch.setenv("LAB_TILED_KEY", "secret")
    where = store_location(lab, tmp_path)
    assert (where.uri, where.api_key) == ("http://127.0.0.1:8000/api", "secret")
    monkeypatch.delenv("LAB_TILED_KEY")
    with pytest.raises(InputError, match="LAB_TILED_KEY"):
        store_location(lab, tmp_path)


def test_the_api_key_comes_from_the_named_file(tmp_path: Path) -> None:
    (tmp_path / "key").write_text("from-file\n")
    lab = parse_lab(SERVER + f"  api_key_file: {tmp_path / 'key'}\n")
    assert store_location(lab, tmp_path).api_key == "from-file"


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        ("  api_key: secret\n", "api_key"),  # never in the lab file
        ("  api_key_env: A\n  api_key_file: /k\n", "not both"),
    ],
)
def test_a_bad_store_section_is_refused(extra: str, problem: str) -> None:
    with pytest.raises(LabFileError, match=problem):
        parse_lab(SERVER + extra)


def test_a_store_uri_must_be_http() -> None:
    with pytest.raises(LabFileError, match="http"):
        parse_lab("name: l\ndevices: []\nstore:\n  uri: sqlite:///x.db\n")
