"""A throwaway PostgreSQL server for the tests that run the stores on it (Debian's server
binaries: `make test` installs them if missing), on a free port of 127.0.0.1, its data in a
temporary directory, stopped and removed afterwards."""

from __future__ import annotations

import glob
import os
import re
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text

from consumers.launch import NAMES

USER = "tellusonce"
STORES = (*NAMES, "registrar")


def binaries() -> Path:
    """The directory of initdb and pg_ctl: on PATH, or Debian's newest."""
    on_path = shutil.which("pg_ctl")
    if on_path:
        return Path(os.path.realpath(on_path)).parent
    found = glob.glob("/usr/lib/postgresql/*/bin/pg_ctl")
    if not found:
        raise RuntimeError("no PostgreSQL server binaries: `make tools` installs them (Debian)")
    return Path(max(found, key=lambda p: [int(n) for n in re.findall(r"\d+", p)])).parent


class Server:
    """One PostgreSQL server; each `fresh()` gives a store URL template naming new databases."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._admin = create_engine(
            f"postgresql+psycopg://{USER}@127.0.0.1:{port}/postgres",
            isolation_level="AUTOCOMMIT",
        )

    def fresh(self) -> str:
        """A TELLUSONCE_STORE_URL template whose databases (one per store) are new and empty."""
        prefix = f"t{uuid.uuid4().hex[:10]}"
        with self._admin.connect() as conn:
            for store in STORES:
                conn.execute(text(f'CREATE DATABASE "{prefix}_{store}"'))
        return f"postgresql+psycopg://{USER}@127.0.0.1:{self.port}/{prefix}_{{service}}"

    def close(self) -> None:
        self._admin.dispose()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def server() -> Iterator[Server]:
    """Start a server (as the `postgres` user when run as root: PostgreSQL refuses root); on a
    failure to start, say why, with the end of the server's log."""
    bin_dir = binaries()
    root = Path(tempfile.mkdtemp(prefix="tellusonce-postgres-"))
    run: list[str] = []
    if os.getuid() == 0:
        try:
            shutil.chown(root, "postgres")
        except LookupError as exc:
            raise RuntimeError("run as root, PostgreSQL needs a `postgres` user") from exc
        root.chmod(0o755)
        run = ["runuser", "-u", "postgres", "--"]
    data, log = root / "data", root / "server.log"
    started: Server | None = None
    try:
        # UTF-8 whatever the machine's locale (unset, initdb made SQL_ASCII: text came as bytes)
        _run("initdb", [*run, str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U",
             USER, "-E", "UTF8", "--locale=C"], log)  # fmt: skip
        port = free_port()
        options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c max_connections=200"
        _run("pg_ctl start", [*run, str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options,
             "-l", str(log), "-w", "start"], log)  # fmt: skip
        started = Server(port)
        yield started
    finally:
        if started is not None:
            started.close()
        if data.exists():
            subprocess.run(
                [*run, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"],
                check=False,
                capture_output=True,
            )
        shutil.rmtree(root, ignore_errors=True)


def _run(what: str, command: list[str], log: Path) -> None:
    done = subprocess.run(command, check=False, capture_output=True, text=True)
    if done.returncode != 0:
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        raise RuntimeError(f"{what} failed ({done.returncode}): {done.stderr[-2000:]}{tail}")
