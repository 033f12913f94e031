"""The supervisor with real (tiny) processes: restart, give up loudly, stop in order."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

import pytest

from aspri.supervisor import Spec, Supervisor
from tests.helpers import wait_until


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


async def test_a_killed_child_is_restarted(tmp_path: Path) -> None:
    supervisor = Supervisor()
    child = await supervisor.start(Spec("sleeper", python("import time; time.sleep(60)")))
    first = child.pid
    assert first is not None
    try:
        os.kill(first, signal.SIGKILL)
        await wait_until(lambda: child.alive and child.pid != first, timeout=10)
        assert child.starts == 2 and child.last_code == -signal.SIGKILL
        assert not supervisor.failed.is_set()
    finally:
        await supervisor.stop()
    assert not child.alive and child.state == "stopped"


async def test_a_child_that_keeps_failing_is_given_up_with_its_last_lines(
    caplog: pytest.LogCaptureFixture,
) -> None:
    supervisor = Supervisor(max_quick_failures=3, first_delay_s=0.01)
    code = "import sys; print('starting'); print('boom: cannot bind', file=sys.stderr); exit(3)"
    with caplog.at_level(logging.ERROR, logger="aspri.supervisor"):
        child = await supervisor.start(Spec("broken", python(code)))
        await asyncio.wait_for(supervisor.failed.wait(), 20)
    try:
        assert supervisor.gave_up is child and child.state == "failed"
        assert child.starts == 3 and child.last_code == 3
        assert "boom: cannot bind" in child.last_lines()
        report = [r.getMessage() for r in caplog.records if "giving up" in r.getMessage()]
        assert len(report) == 1 and "boom: cannot bind" in report[0]
    finally:
        await supervisor.stop()


async def test_children_stop_tier_by_tier_and_the_rest_last(tmp_path: Path) -> None:
    """Each child records when it got SIGTERM; the unnamed child must be the last one."""
    stamps = tmp_path / "stamps"
    stamps.mkdir()
    code = (
        "import signal, sys, time, pathlib\n"
        "def bye(*_):\n"
        f"    pathlib.Path({str(stamps)!r}, sys.argv[1]).write_text(str(time.monotonic()))\n"
        "    time.sleep(0.2)\n"
        "    sys.exit(0)\n"
        "signal.signal(signal.SIGTERM, bye)\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    supervisor = Supervisor()
    children = [
        await supervisor.start(Spec(name, [*python(code), name]))
        for name in ("store", "gateway", "worker")
    ]
    await wait_until(lambda: all("ready" in c.last_lines() for c in children), timeout=20)
    await supervisor.stop(("worker",), ("gateway",))
    when = {p.name: float(p.read_text()) for p in stamps.iterdir()}
    assert when["worker"] < when["gateway"] < when["store"]
    assert all(c.last_code == 0 for c in children)


async def test_a_fatal_exit_code_is_given_up_at_once() -> None:
    supervisor = Supervisor(fatal_codes=frozenset({2}))
    child = await supervisor.start(Spec("misconfigured", python("exit(2)")))
    await asyncio.wait_for(supervisor.failed.wait(), 20)
    assert child.starts == 1 and child.state == "failed"
    await supervisor.stop()


async def test_a_child_with_its_own_log_reports_from_that_file(tmp_path: Path) -> None:
    log_file = tmp_path / "own.log"
    code = f"open({str(log_file)!r}, 'w').write('line one\\nfatal: no disk\\n'); exit(1)"
    supervisor = Supervisor(max_quick_failures=1)
    child = await supervisor.start(Spec("own", python(code), log_file=log_file))
    await asyncio.wait_for(supervisor.failed.wait(), 20)
    assert child.last_lines() == ["line one", "fatal: no disk"]
    await supervisor.stop()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
async def test_children_do_not_outlive_a_supervisor_killed_outright(tmp_path: Path) -> None:
    """A real supervisor process is killed with SIGKILL: its child must go too, not run orphaned."""
    pid_file = tmp_path / "child.pid"
    code = (
        "import asyncio, sys\n"
        "from aspri.supervisor import Spec, Supervisor\n"
        "async def main():\n"
        "    child = await Supervisor().start(\n"
        "        Spec('sleeper', [sys.executable, '-c', 'import time; time.sleep(120)']))\n"
        f"    open({str(pid_file)!r}, 'w').write(str(child.pid))\n"
        "    await asyncio.sleep(120)\n"
        "asyncio.run(main())\n"
    )
    parent = await asyncio.create_subprocess_exec(*python(code))
    try:
        child = int(await wait_until(lambda: pid_file.exists() and pid_file.read_text(), 60))
        assert _running(child)
    finally:
        parent.kill()
        await parent.wait()
    # Not our child: it is gone once init has reaped it (or a zombie, not yet reaped).
    try:
        await wait_until(lambda: not _running(child), timeout=20)
    finally:
        if _running(child):  # the failure case: do not leave the orphan behind
            os.kill(child, signal.SIGKILL)


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] not in "ZX"
    except (FileNotFoundError, IndexError):
        return False
