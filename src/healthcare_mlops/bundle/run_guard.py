"""What ends with the local runner: each task's process group, and the marker of the run.

A task runs in its own session, so its process group holds the task and everything it
starts (Spark's JVM, a scoring server). When the runner is ended (Ctrl+C, SIGTERM,
SIGHUP) the group is ended with it: SIGTERM, a grace period, then SIGKILL. Without this a
killed runner left its task running on to commit, with no ``job_runs`` row.

A runner that is killed outright (SIGKILL, a crash, the machine going down) cannot clean
up. So each run writes a marker, ``<home>/run_markers/<run_id>.json`` (the runner's pid
and the task running now, with its process group), and removes it when the run is
recorded. The next runner start reconciles every marker whose runner is gone: it ends the
task's process group if any of it still runs, and appends the run as ``INTERRUPTED``, with
the reason, to ``job_runs``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import signal
import subprocess
import threading
from pathlib import Path

from healthcare_mlops.bundle import run_history
from healthcare_mlops.bundle.run_history import INTERRUPTED, RunRecord
from healthcare_mlops.settings import Settings

MARKER_DIR = "run_markers"
GRACE_SECONDS = 5.0        # a task's time to stop after SIGTERM before SIGKILL
STOP_SIGNALS = ("SIGTERM", "SIGHUP")


class RunnerStopped(KeyboardInterrupt):
    """The runner received a stop signal: unwinds like Ctrl+C, naming the signal."""

    def __init__(self, name: str):
        super().__init__(name)
        self.name = name


@contextlib.contextmanager
def stop_on_signals():
    """SIGTERM and SIGHUP raise ``RunnerStopped`` in the main thread while the run lasts.

    Only the main thread can own signal handlers; a runner in another thread (the
    console's in-process runs) keeps the process's handlers and relies on its markers."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame):
        raise RunnerStopped(signal.Signals(signum).name)

    previous = {name: signal.signal(getattr(signal, name), stop) for name in STOP_SIGNALS}
    try:
        yield
    finally:
        for name, handler in previous.items():
            signal.signal(getattr(signal, name), handler)


def start_task(command: list, cwd: str, env: dict) -> subprocess.Popen:
    """The task's process, leader of its own session and process group."""
    return subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, text=True, bufsize=1, errors="replace",
                            start_new_session=True)


def _signal_group(pgid: int, signum: int) -> bool:
    """Send ``signum`` to the group; False when no process of it is left."""
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        return False
    return True


def end_group(process: subprocess.Popen, grace: float = GRACE_SECONDS) -> None:
    """End the task's whole process group: SIGTERM, ``grace`` seconds, then SIGKILL."""
    if _signal_group(process.pid, signal.SIGTERM):
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass      # it did not stop in time: SIGKILL below
    _signal_group(process.pid, signal.SIGKILL)   # the leader and whatever it left behind
    process.wait()


def _start_ticks(pid: int) -> int | None:
    """When the process started (clock ticks since boot, Linux), to tell a reused pid apart."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[19])


def _alive(pid: int | None, ticks: int | None) -> bool:
    """Whether the process ``pid`` that started at ``ticks`` still runs."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True        # someone else's process: not ours to judge, so not gone
    return ticks is None or _start_ticks(pid) in (None, ticks)


class RunMarker:
    """The on-disk trace of one run in progress (see the module docstring)."""

    def __init__(self, home: Path, run_id: int, job_key: str, trigger: str, start: dt.datetime):
        self.path = Path(home) / MARKER_DIR / f"{run_id}.json"
        self.data = {"run_id": run_id, "job_key": job_key, "trigger": trigger, "start_time": start.isoformat(),
                     "runner_pid": os.getpid(), "runner_ticks": _start_ticks(os.getpid()), "task": None}
        self._write()

    def _write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        scratch = self.path.with_suffix(".tmp")
        scratch.write_text(json.dumps(self.data))
        os.replace(scratch, self.path)      # never a half-written marker

    def task_started(self, task_key: str, task_run_id: int, start: dt.datetime, argv: list, pid: int) -> None:
        self.data["task"] = {"task_key": task_key, "run_id": task_run_id, "start_time": start.isoformat(),
                             "parameters": argv, "pgid": pid, "ticks": _start_ticks(pid)}
        self._write()

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


def _leftover_group(task: dict) -> int | None:
    """The task's process group when some of it still runs (a pid of the group is never reused
    while the group exists, so a live group with this id is the task's)."""
    pgid = task.get("pgid")
    if not pgid or (_alive(pgid, None) and not _alive(pgid, task.get("ticks"))):
        return None           # the leader's pid now belongs to another process
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return None           # not a group of ours
    return pgid


def reconcile(settings: Settings) -> list[int]:
    """Record the runs whose runner is gone as INTERRUPTED (ending what is left of their task);
    the run ids recorded."""
    folder = Path(settings.home) / MARKER_DIR
    recorded = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        marker = json.loads(path.read_text())
        if _alive(marker["runner_pid"], marker.get("runner_ticks")):
            continue                      # a runner still at work
        last_seen = dt.datetime.fromtimestamp(path.stat().st_mtime, dt.timezone.utc)
        reason = f"interrupted: the runner (pid {marker['runner_pid']}) ended before the run finished"
        task, records = marker.get("task"), []
        if task:
            pgid = _leftover_group(task)
            if pgid is not None:
                _signal_group(pgid, signal.SIGKILL)
                reason += f"; its task's processes (group {pgid}) were ended at the next runner start"
            reason += f"; task '{task['task_key']}' was running"
            records.append(RunRecord(run_id=task["run_id"], parent_run_id=marker["run_id"], job_key=marker["job_key"],
                                     task_key=task["task_key"], status=INTERRUPTED, trigger=marker["trigger"],
                                     start_time=dt.datetime.fromisoformat(task["start_time"]), end_time=last_seen,
                                     error=reason, parameters=task.get("parameters")))
        records.append(RunRecord(run_id=marker["run_id"], job_key=marker["job_key"], status=INTERRUPTED,
                                 trigger=marker["trigger"], start_time=dt.datetime.fromisoformat(marker["start_time"]),
                                 end_time=last_seen, error=reason))
        run_history.append_runs(settings, records)
        path.unlink()
        recorded.append(marker["run_id"])
    return recorded
