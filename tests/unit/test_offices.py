"""Offices' API keys: a leaked key can be revoked (it could only be deleted from the store by
hand), and keys are listed by an id that is not the key."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from producers.offices import ID_LENGTH, Offices, key_id


def test_a_revoked_key_is_refused_and_others_are_not(tmp_path: Path) -> None:
    offices = Offices(f"sqlite:///{tmp_path / 'registrar.db'}")
    leaked, other = offices.create_key("LEEDS-RO-1"), offices.create_key("LEEDS-RO-1")
    assert offices.office_of(leaked) == "LEEDS-RO-1"

    revoked = offices.revoke(key_id(leaked))

    assert revoked is not None
    assert (revoked.key_id, revoked.office) == (key_id(leaked), "LEEDS-RO-1")
    assert offices.office_of(leaked) is None
    assert offices.office_of(other) == "LEEDS-RO-1"
    assert offices.revoke(key_id(leaked)) is None  # revoked already
    assert offices.revoke(key_id(other)[:-1]) is None  # not an id: a prefix revokes nothing
    listed = {k.key_id: k.revoked_at is not None for k in offices.listing()}
    assert listed == {key_id(leaked): True, key_id(other): False}
    assert all(leaked not in str(k) and len(k.key_id) == ID_LENGTH for k in offices.listing())


def test_a_store_made_before_keys_could_be_revoked_keeps_its_keys(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'registrar.db'}"
    with create_engine(url).begin() as conn:
        conn.execute(text("CREATE TABLE api_keys (key_hash VARCHAR PRIMARY KEY, "
                          "office VARCHAR NOT NULL, created_at DATETIME NOT NULL)"))  # fmt: skip
    key = "tuo_an-old-key"
    with create_engine(url).begin() as conn:
        conn.execute(
            text("INSERT INTO api_keys VALUES (:h, 'YORK-1', '2026-11-01 10:00:00.000000')"),
            {"h": hashlib.sha256(key.encode()).hexdigest()},
        )
    offices = Offices(url)
    assert offices.office_of(key) == "YORK-1"
    assert offices.revoke(key_id(key)) is not None
    assert offices.office_of(key) is None


def test_keys_are_listed_and_revoked_from_the_command_line(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    run_cli: Callable[[list[str]], int],
) -> None:
    monkeypatch.setenv("TELLUSONCE_DATA_DIR", str(tmp_path))
    assert run_cli(["keys", "create", "LEEDS-RO-1"]) == 2  # in which districts?
    assert "--district NAME" in capsys.readouterr().err
    assert run_cli(["keys", "create", "LEEDS-RO-1", "--district", "Leeds"]) == 0
    key = capsys.readouterr().out.splitlines()[-1]
    assert run_cli(["keys", "list"]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    assert line.startswith(f"{key_id(key)}  LEEDS-RO-1")
    assert line.endswith("active  (leeds)")
    assert key not in line
    assert run_cli(["keys", "revoke", key_id(key)]) == 0
    assert capsys.readouterr().out.startswith(f"revoked key {key_id(key)} of office LEEDS-RO-1")
    assert run_cli(["keys", "revoke", key_id(key)]) == 2
    assert "no key in use has the id" in capsys.readouterr().err
    assert run_cli(["keys", "revoke"]) == 2
    offices = Offices(f"sqlite:///{tmp_path / 'registrar.db'}")
    assert offices.office_of(key) is None


def test_an_office_registers_only_in_its_districts(tmp_path: Path) -> None:
    """Any office could submit another district's register entries: published first, they made
    that district's own submission of the entry a conflict."""
    offices = Offices(f"sqlite:///{tmp_path / 'registrar.db'}")
    offices.create_key("YORK-1", ["York", " North  YORKSHIRE "])
    offices.create_key("YORK-1", ["York", "Selby"])  # another key: the districts add up
    offices.create_key("ANYWHERE-1")
    assert offices.districts("YORK-1") == {"york", "north yorkshire", "selby"}
    assert offices.districts("ANYWHERE-1") is None


@pytest.mark.parametrize(
    ("office", "district", "refused"),
    [("leeds ro 1!", "Leeds", "office 'leeds ro 1!' must be"), ("YORK-1", "<b>", "district")],
)
def test_a_key_for_a_name_no_submission_can_give_is_refused(
    tmp_path: Path, office: str, district: str, refused: str
) -> None:
    """A key for an office named "leeds ro 1!" was made: no submission can name that office."""
    offices = Offices(f"sqlite:///{tmp_path / 'registrar.db'}")
    with pytest.raises(ValueError, match=refused):
        offices.create_key(office, [district])
    assert offices.listing() == []


@pytest.mark.parametrize("wanted", ["____________", "%", "%%%%%%%%%%%%", "ABCDEFGHIJKL"])
def test_an_id_that_is_not_one_revokes_nothing(tmp_path: Path, wanted: str) -> None:
    """`_` and `%` were LIKE's wildcards: twelve underscores revoked every office's keys."""
    offices = Offices(f"sqlite:///{tmp_path / 'registrar.db'}")
    keys = [offices.create_key("LEEDS-RO-1"), offices.create_key("YORK-1")]
    assert offices.revoke(wanted) is None
    assert [offices.office_of(k) for k in keys] == ["LEEDS-RO-1", "YORK-1"]
    assert offices.revoke(key_id(keys[0]).upper()) is not None  # an id in capitals is one


def test_an_office_s_districts_do_not_change_without_a_word(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    run_cli: Callable[[list[str]], int],
) -> None:
    """A key with --district for an office of any district narrowed every key of it silently;
    --any-district for an office of some districts was ignored, saying it registered in them."""
    monkeypatch.setenv("TELLUSONCE_DATA_DIR", str(tmp_path))
    assert run_cli(["keys", "create", "YORK-RO", "--any-district"]) == 0
    capsys.readouterr()
    assert run_cli(["keys", "create", "YORK-RO", "--district", "York"]) == 0
    assert "every key of it now registers in york only" in capsys.readouterr().err
    assert run_cli(["keys", "create", "YORK-RO", "--any-district"]) == 2
    assert "registers in york only" in capsys.readouterr().err


def test_a_locked_store_is_one_line_not_a_traceback(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    run_cli: Callable[[list[str]], int],
) -> None:
    """Revoking a leaked key while the API held the store's write lock printed an uncaught
    OperationalError."""
    import sqlite3

    monkeypatch.setenv("TELLUSONCE_DATA_DIR", str(tmp_path))
    key = Offices(f"sqlite:///{tmp_path / 'registrar.db'}").create_key("LEEDS-RO-1", ["Leeds"])
    locker = sqlite3.connect(tmp_path / "registrar.db", isolation_level=None)
    locker.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(SystemExit) as stopped:
            run_cli(["keys", "revoke", key_id(key)])
    finally:
        locker.execute("ROLLBACK")
    message = str(stopped.value.code)
    assert message.startswith("error: store busy: database is locked")
    assert "\n" not in message


def test_listing_keys_where_there_is_no_store_makes_none(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    run_cli: Callable[[list[str]], int],
) -> None:
    """Pointed at the wrong data directory, `keys list` printed nothing and made a store there."""
    elsewhere = tmp_path / "elsewhere"
    monkeypatch.setenv("TELLUSONCE_DATA_DIR", str(elsewhere))
    assert run_cli(["keys", "list"]) == 0
    assert f"no keys: no registrar store in {elsewhere}" in capsys.readouterr().err
    assert not elsewhere.exists()
