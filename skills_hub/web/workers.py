"""`skills-hub serve --workers N`: N server processes, each with a listening socket of its own
on the same port (SO_REUSEPORT), kept running by this process.

uvicorn's own `--workers` binds one socket in the parent and every worker accepts from it:
asyncio accepts a burst of waiting connections in whichever worker wakes first, so with a
few kept-alive clients one worker often holds them all while the other idles (keyword
search with 8 clients on 2 workers: p50 16 ms when the connections spread, 32 ms when they
did not; bench/README.md "concurrency_bench.py"). With a socket per worker the kernel
hashes each new connection to one of the sockets, spreading them evenly whatever the
workers are doing. The sockets are made here with their TCP protocol, so asyncio sets
TCP_NODELAY on every connection (a kept-alive answer never waits for a delayed ACK).

The supervisor restarts a worker that dies (a crash, the OOM killer), unless workers die
faster than RESTART_WINDOW_S allows, which means they cannot start (the port taken by
another program, a broken home): then it stops them all and exits non-zero. SIGINT and
SIGTERM stop the workers gracefully (uvicorn finishes the requests in flight). Connections
waiting in a dead worker's queue are lost with it; clients retry them.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import socket
import time
from multiprocessing.process import BaseProcess
from typing import Any

log = logging.getLogger(__name__)

APP = "skills_hub.web.app:create_app"
BACKLOG = 2048
RESTART_WINDOW_S = 10.0   # at most RESTARTS_IN_WINDOW restarts in this long ...
RESTARTS_IN_WINDOW = 5    # ... else the workers cannot start: give up
STOP_GRACE_S = 30.0       # how long stopping workers may take before they are killed


def listening_socket(host: str, port: int, *, listen: bool = True) -> socket.socket:
    """A TCP socket bound to (host, port) with SO_REUSEPORT, so each worker binds its own
    (without `listen`: bound only, which takes no connections)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    if listen:
        sock.listen(BACKLOG)
    return sock


def run_worker(host: str, port: int, log_config: dict[str, Any]) -> None:
    """One worker process: its own socket, one uvicorn server on it."""
    import uvicorn

    sock = listening_socket(host, port)
    config = uvicorn.Config(APP, factory=True, log_level="info", log_config=log_config,
                            access_log=False)
    uvicorn.Server(config).run(sockets=[sock])


def supervise(host: str, port: int, workers: int, log_config: dict[str, Any]) -> int:
    """Run `workers` worker processes until SIGINT or SIGTERM; returns the exit status."""
    # A socket is bound here, before any worker starts, so a port in use is one clear
    # error at once; it does not listen, so it takes no connection (the workers' do).
    try:
        reserved = listening_socket(host, port, listen=False)
    except OSError as exc:
        log.error("cannot listen on %s:%d: %s", host, port, exc)
        return 1
    context = multiprocessing.get_context("spawn")
    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}

    def start() -> BaseProcess:
        process = context.Process(target=run_worker, args=(host, port, log_config),
                                  name="skills-hub-worker")
        process.start()
        return process

    running = [start() for _ in range(workers)]
    reserved.close()
    log.info("serving on http://%s:%d with %d workers (pids %s)", host, port, workers,
             ", ".join(str(p.pid) for p in running))
    restarts: list[float] = []
    status = 0
    try:
        while not stopping:
            time.sleep(0.2)
            for i, process in enumerate(running):
                if process.is_alive() or stopping:
                    continue
                now = time.monotonic()
                restarts = [t for t in restarts if now - t < RESTART_WINDOW_S] + [now]
                if len(restarts) > RESTARTS_IN_WINDOW:
                    log.error("workers keep exiting (the last with status %s): stopping",
                              process.exitcode)
                    stopping, status = True, 1
                    break
                log.warning("worker %d exited with status %s: starting another",
                            process.pid, process.exitcode)
                running[i] = start()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _stop_all(running)
    return status


def _stop_all(running: list[BaseProcess]) -> None:
    for process in running:
        if process.is_alive():
            process.terminate()  # SIGTERM: uvicorn's graceful shutdown
    deadline = time.monotonic() + STOP_GRACE_S
    for process in running:
        process.join(max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            process.kill()
            process.join()
