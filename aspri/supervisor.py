"""A small process supervisor: start children, restart the ones that die, give up loudly.

Each child runs in its own session (process group), so a Ctrl-C at the terminal reaches only
the supervisor, which then stops the children in the order it is told. A child that exits on
its own is restarted with exponential backoff; one that fails ``max_quick_failures`` times in a
row, each time within ``quick_s`` seconds of starting, or exits with one of ``fatal_codes``
(``aspri``'s configuration errors: a restart cannot fix them), is given up: the supervisor logs
it with the child's last output lines and sets ``failed``, so its owner can stop and say why.

Each child is also tied to the supervisor's life (Linux: ``PR_SET_PDEATHSIG``): when the
supervisor is killed outright (``kill -9``, the OOM killer), every child gets SIGTERM instead of
running on orphaned, holding the ports and the store's data directory.

Children's output passes through the supervisor (to keep the last lines for that report): to
our stderr, or for a child with ``log_file``, which writes its own log, read from that file.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import logging
import os
import signal
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Literal

log = logging.getLogger(__name__)

State = Literal["starting", "running", "backoff", "failed", "stopped"]
TAIL_LINES = 20


@dataclass
class Spec:
    """What to run: a name for the logs, the command line, its environment."""

    name: str
    argv: Sequence[str]
    env: dict[str, str] | None = None
    cwd: Path | None = None
    log_file: Path | None = None
    """Set when the child writes its own log there; its output is then not forwarded."""


@dataclass
class Child:
    """One supervised process and what is known about its runs."""

    spec: Spec
    process: asyncio.subprocess.Process | None = None
    state: State = "stopped"
    starts: int = 0
    quick_failures: int = 0
    started_at: float = 0.0
    last_code: int | None = None
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=TAIL_LINES))
    _forward: asyncio.Task[None] | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def start(self) -> None:
        self.state = "starting"
        self.started_at = time.monotonic()
        self.starts += 1
        output = asyncio.subprocess.DEVNULL if self.spec.log_file else asyncio.subprocess.PIPE
        self.process = await asyncio.create_subprocess_exec(
            *self.spec.argv,
            env=self.spec.env,
            cwd=self.spec.cwd,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=output,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with(os.getpid()),
        )
        if self.process.stdout is not None:
            self._forward = asyncio.create_task(
                _forward(self.process.stdout, self.tail, sys.stderr.buffer),
                name=f"output:{self.name}",
            )
        self.state = "running"
        log.info("service started", extra={"service": self.name, "pid": self.process.pid})

    async def wait(self) -> int:
        assert self.process is not None
        code = await self.process.wait()
        if self._forward is not None:  # the last lines of a dying child are wanted in its tail
            await asyncio.wait({self._forward}, timeout=2.0)
        self.last_code = code
        return code

    def last_lines(self) -> list[str]:
        """The child's last output lines (from its own log file when it has one)."""
        if self.spec.log_file is None:
            return list(self.tail)
        try:
            with self.spec.log_file.open("rb") as f:
                f.seek(max(0, f.seek(0, os.SEEK_END) - 8192))
                lines = f.read().decode(errors="replace").splitlines()
        except OSError:
            return []
        return lines[-TAIL_LINES:]

    def signal(self, sig: int) -> None:
        if self.alive:
            assert self.process is not None
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(sig)

    async def stop(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        """SIGTERM, then SIGKILL after ``timeout`` seconds."""
        self.state = "stopped"
        if not self.alive:
            return
        self.signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.wait(), timeout)
        except TimeoutError:
            log.warning("service did not stop in time; killing it", extra={"service": self.name})
            self.signal(signal.SIGKILL)
            await self.wait()
        log.info("service stopped", extra={"service": self.name, "code": self.last_code})


PR_SET_PDEATHSIG = 1


def _die_with(parent: int) -> Callable[[], None] | None:
    """A pre-exec hook asking the kernel to SIGTERM the child when ``parent`` dies (Linux only).

    The check of ``getppid`` after the call closes the race where the parent died between the
    fork and the ``prctl``: the signal would then never come.
    """
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)

    def hook() -> None:
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:
            os.kill(os.getpid(), signal.SIGTERM)

    return hook


async def _forward(stream: asyncio.StreamReader, tail: deque[str], sink: BinaryIO) -> None:
    """Copy a child's output to ``sink`` line by line, keeping the last lines in ``tail``."""
    while line := await stream.readline():
        tail.append(line.decode(errors="replace").rstrip())
        with contextlib.suppress(OSError, ValueError):
            sink.write(line)
            sink.flush()


class Supervisor:
    """Runs children until ``stop``; see the module docstring for the restart policy."""

    def __init__(
        self,
        *,
        max_quick_failures: int = 5,
        quick_s: float = 10.0,
        first_delay_s: float = 0.1,
        max_delay_s: float = 10.0,
        fatal_codes: frozenset[int] = frozenset(),
        on_start: Callable[[Child], None] = lambda _child: None,
    ) -> None:
        self.max_quick_failures = max_quick_failures
        self.fatal_codes = fatal_codes
        self.on_start = on_start
        """Called after every (re)start of a child, e.g. to publish its new pid."""
        self.quick_s = quick_s
        self.first_delay_s = first_delay_s
        self.max_delay_s = max_delay_s
        self.children: dict[str, Child] = {}
        self.failed = asyncio.Event()
        """Set when a child was given up; ``gave_up`` names it."""
        self.gave_up: Child | None = None
        self._stopping = asyncio.Event()
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def __getitem__(self, name: str) -> Child:
        return self.children[name]

    async def start(self, spec: Spec) -> Child:
        """Start ``spec`` now and keep it running."""
        child = self.children[spec.name] = Child(spec)
        await child.start()
        self.on_start(child)
        self._tasks[spec.name] = asyncio.create_task(self._keep(child), name=f"keep:{spec.name}")
        return child

    async def _keep(self, child: Child) -> None:
        while True:
            code = await child.wait()
            if self._stopping.is_set() or child.state == "stopped":
                return
            ran = time.monotonic() - child.started_at
            child.quick_failures = child.quick_failures + 1 if ran < self.quick_s else 1
            if code in self.fatal_codes:
                self._give_up(child, f"exit code {code}, a configuration error")
                return
            if child.quick_failures >= self.max_quick_failures:
                why = f"{child.quick_failures} quick failures in a row, last exit code {code}"
                self._give_up(child, why)
                return
            delay = min(self.max_delay_s, self.first_delay_s * 2 ** (child.quick_failures - 1))
            child.state = "backoff"
            log.error(
                "service exited; restarting",
                extra={"service": child.name, "code": code, "in_seconds": round(delay, 2)},
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)
            if self._stopping.is_set():
                return
            try:
                await child.start()
            except OSError as exc:  # the command itself cannot run
                self._give_up(child, f"it cannot be started: {exc}")
                return
            self.on_start(child)

    def _give_up(self, child: Child, why: str) -> None:
        child.state = "failed"
        self.gave_up = child
        lines = "\n".join(f"    {line}" for line in child.last_lines()) or "    (none)"
        log.error(
            "service keeps failing; giving up on it (%s). Its last output:\n%s",
            why,
            lines,
            extra={"service": child.name},
        )
        self.failed.set()

    async def stop(self, *tiers: Sequence[str], timeout: float = 10.0) -> None:  # noqa: ASYNC109
        """Stop restarting, then stop the named children tier by tier (a tier at once), and
        every child not named last."""
        self._stopping.set()
        named = [name for tier in tiers for name in tier]
        rest = [name for name in self.children if name not in named]
        for tier in [*tiers, rest]:
            await asyncio.gather(
                *(self.children[n].stop(timeout) for n in tier if n in self.children)
            )
        for task in self._tasks.values():
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
