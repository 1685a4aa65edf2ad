"""Where the Pexels key may come from: PEXELS_API_KEY, or a user-only file PEXELS_API_KEY_FILE."""

from __future__ import annotations

import os

import pytest
from pexels_helpers import KEY

from conftest import snakemake
from senorita.sources.pexels_api import KeyFileError, api_key


@pytest.fixture
def no_key(monkeypatch):
    monkeypatch.delenv("PEXELS_API_KEY", raising=False)
    monkeypatch.delenv("PEXELS_API_KEY_FILE", raising=False)


def _key_file(tmp_path, mode: int, text: str = KEY + "\n"):
    path = tmp_path / "pexels.key"
    path.write_text(text)
    os.chmod(path, mode)
    return path


def test_key_from_the_environment_or_a_user_only_file(tmp_path, monkeypatch, no_key):
    assert api_key() is None
    path = _key_file(tmp_path, 0o600)
    monkeypatch.setenv("PEXELS_API_KEY_FILE", str(path))
    assert api_key() == KEY  # the trailing newline is not part of it
    monkeypatch.setenv("PEXELS_API_KEY", "from-env")
    assert api_key() == "from-env"  # the variable wins over the file


@pytest.mark.parametrize(
    ("mode", "text", "message"),
    [
        (0o640, KEY, "can be read or written by group or others (mode 640)"),
        (0o604, KEY, "chmod 600"),
        (0o600, "\n", "is empty"),
    ],
)
def test_a_key_file_others_can_read_or_an_empty_one_is_refused(
    tmp_path, monkeypatch, no_key, mode, text, message
):
    monkeypatch.setenv("PEXELS_API_KEY_FILE", str(_key_file(tmp_path, mode, text)))
    with pytest.raises(KeyFileError, match="PEXELS_API_KEY_FILE") as err:
        api_key()
    assert message in str(err.value) and KEY not in str(err.value)


def test_a_missing_key_file_is_named(tmp_path, monkeypatch, no_key):
    monkeypatch.setenv("PEXELS_API_KEY_FILE", str(tmp_path / "nope"))
    with pytest.raises(KeyFileError, match=r"cannot read .*nope"):
        api_key()


def test_the_workflow_takes_a_key_file_and_refuses_a_readable_one(tmp_path, no_key):
    config = {"source": {"kind": "pexels"}}
    good = _key_file(tmp_path, 0o600)
    proc = snakemake(
        tmp_path / "a", "-n", "all", config=config, env={"PEXELS_API_KEY_FILE": str(good)}
    )
    assert "catalogue" in proc.stdout
    os.chmod(good, 0o644)
    proc = snakemake(
        tmp_path / "b",
        "-n",
        "all",
        config=config,
        check=False,
        env={"PEXELS_API_KEY_FILE": str(good)},
    )
    assert proc.returncode != 0
    assert "can be read or written by group or others" in proc.stdout + proc.stderr
