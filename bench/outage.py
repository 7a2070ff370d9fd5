"""How soon a PostgreSQL worker is back after its server was away. A plain script: it prints figures only.

    python bench/outage.py [--url postgresql://postgres@127.0.0.1:5432/postgres] [--outage 45] [--after 25] [--log F]

It makes a database of its own, a schedule every second of a FUNCTION that records when it ran, and starts one
``ductape worker`` that reaches the server through a TCP forwarder of this script's (the real server is never
stopped). After 4 s it stops the forwarder (every connection through it closes, new ones are refused) for
``--outage`` seconds, starts it again, and lets the worker run ``--after`` seconds more. Printed: how long after the
forwarder was back the first run started, and how many runs started in the ``--after`` seconds (one a second when
none misfired). ``--log F`` keeps the worker's log in F and counts its lines. ``PYTHONPATH=<another checkout>/src``
measures that checkout's engine instead.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import psycopg

APP = textwrap.dedent(
    """
    import os, time
    from ductape_jobs import Ductape

    ductape = Ductape(os.environ["DUCTAPE_STORE"])

    @ductape.function("tick")
    async def tick(input, ctx):
        with open(os.environ["TICKS"], "a") as f:
            f.write(f"{time.time():.3f}\\n")
    """
)


class Forwarder:
    """TCP from a port of its own to ``target``: ``down()`` closes it and its connections, ``up()`` listens again."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target, self.port = target, 0
        self._listener: socket.socket | None = None
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()

    def up(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.port, self._listener = listener.getsockname()[1], listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def down(self) -> None:
        assert self._listener is not None
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        with self._lock:
            for s in self._open:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()
            self._open.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
                server = socket.create_connection(self.target)
            except OSError:
                return
            with self._lock:
                self._open += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=_pipe, args=(a, b), daemon=True).start()


def _pipe(a: socket.socket, b: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := a.recv(65536):
            b.sendall(data)
    with contextlib.suppress(OSError):
        b.shutdown(socket.SHUT_RDWR)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432/postgres", help="an admin connection")
    ap.add_argument("--outage", type=float, default=45.0, help="seconds the server is away")
    ap.add_argument("--after", type=float, default=25.0, help="seconds the worker runs after it is back")
    ap.add_argument("--log", type=Path, default=None, help="keep the worker's log (INFO and up) in this file")
    args = ap.parse_args()
    info = psycopg.conninfo.conninfo_to_dict(args.url)
    host, port = str(info.get("host", "127.0.0.1")), int(info.get("port", 5432))
    name = f"outage_{os.getpid()}"
    with psycopg.connect(args.url, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    forwarder = Forwarder((host, port))
    forwarder.up()
    user = info.get("user", "postgres")
    store = f"postgresql://{user}@127.0.0.1:{forwarder.port}/{name}"
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "outage_app.py").write_text(APP)
        ticks = Path(tmp) / "ticks.log"
        path = os.pathsep.join(p for p in (tmp, os.environ.get("PYTHONPATH", "")) if p)  # yours too: another checkout
        env = {**os.environ, "DUCTAPE_STORE": store, "TICKS": str(ticks), "PYTHONPATH": path}
        setup = "from outage_app import ductape as d\n" + (
            "d.job.create({'name': 't', 'tag': 't', 'event_type': 'FUNCTION', 'event_tag': 'tick'})\n"
            "d.job.schedule({'env': 'e', 'product_tag': 'p', 'event': 't', 'repeat': {'every': 1000}})\nd.close()\n"
        )
        subprocess.run([sys.executable, "-c", setup], env=env, check=True)
        cli = [sys.executable, "-m", "ductape_jobs.cli.main", "worker", "--app", "outage_app:ductape"]
        log = open(args.log, "w") if args.log else None  # noqa: SIM115 - closed after the worker
        worker = subprocess.Popen(
            cli + ([] if log else ["--quiet"]), env=env, cwd=tmp, stderr=log or subprocess.DEVNULL
        )
        try:
            time.sleep(4)
            forwarder.down()
            down = time.time()
            time.sleep(args.outage)
            forwarder.up()
            up = time.time()
            time.sleep(args.after)
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(30)
            forwarder.down()
            if log:
                log.close()
        starts = [float(line) for line in ticks.read_text().split()]
    with psycopg.connect(args.url, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
    after = [t for t in starts if t > up]
    first = f"{after[0] - up:.1f} s" if after else "none"
    print(
        f"server away {up - down:.1f} s; first run after it was back: {first}; runs in the {args.after:g} s after: "
        f"{len(after)}"
    )
    if args.log:
        lines = args.log.read_text().splitlines()
        tracebacks = sum('"exception"' in line or line.startswith("Traceback") for line in lines)
        print(f"the worker's log: {len(lines)} lines from its start to its stop, {tracebacks} with a traceback")


if __name__ == "__main__":
    main()
