"""What ends with the local runner: each task's process group, and the marker of the run.

A task runs in its own session, so its process group holds the task and everything it
starts (Spark's JVM under classic, a scoring server; under Spark Connect the JVM is the
run's server, ``spark_server.py``). When the runner is ended (Ctrl+C, SIGTERM,
SIGHUP) the group is ended with it: SIGTERM, a grace period, then SIGKILL. Without this a
killed runner left its task running on to commit, with no ``job_runs`` row.

A runner that is killed outright (SIGKILL, a crash, the machine going down) cannot clean
up. So each run writes a marker, ``<home>/run_markers/<run_id>.json`` (the runner's pid
and the task running now, with its process group), and removes it when the run is
recorded. The next runner start reconciles every marker whose runner is gone: it ends the
task's process group if any of it still runs, and appends the run as ``INTERRUPTED``, with
the reason, to ``job_runs``, naming the tables its task committed to after it started (an
orphaned task may have rewritten predictions before it was ended).

The markers also hold the job's ``max_concurrent_runs``: a run is admitted (``admit``) only
while fewer runs of its job are running; otherwise, as Databricks does with ``queue.enabled``,
it waits in the queue (oldest first) and starts when a run ends, or without a queue it is
refused. Admission and reconciling happen under one lock file, so two runners starting at
once neither both get the last slot nor both record the same dead run.

Every run leaves two rows in the governance audit log: when it starts and when it ends,
however it ends (the end row of a run whose runner died is written by ``reconcile``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

from healthcare_mlops.emulator import run_history
from healthcare_mlops.bundle.run_states import INTERRUPTED
from healthcare_mlops.emulator.run_history import RunRecord
from healthcare_mlops.errors import UserError
from healthcare_mlops.settings import Settings

MARKER_DIR = "run_markers"
ADMISSION_LOCK = ".admission.lock"
QUEUED, RUNNING = "queued", "running"      # a marker's state
QUEUE_POLL_SECONDS = 0.5
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
                     "runner_pid": os.getpid(), "runner_ticks": _start_ticks(os.getpid()), "task": None,
                     "state": QUEUED}
        self._write()

    def set_state(self, state: str) -> None:
        self.data["state"] = state
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


def _tables_written_since(settings: Settings, since: dt.datetime) -> list[str]:
    """``table (version N, operation)`` of every table (bar the run history and audit log) committed to
    at or after ``since``: what an orphaned task may have changed."""
    from healthcare_mlops.runtime.catalog import table_catalog
    from healthcare_mlops.tables import ALL_TABLES, JOB_RUNS, MODEL_GOVERNANCE_LOG

    catalog, written = table_catalog(settings), []
    for name in ALL_TABLES:
        if name in (JOB_RUNS, MODEL_GOVERNANCE_LOG) or not catalog.exists(name):
            continue
        written += [f"{name} (version {entry.version}, {entry.operation})" for entry in catalog.history(name, 5)
                    if entry.timestamp is not None and entry.timestamp >= since]
    return written


def record_audit(settings: Settings, job_key: str, run_id: int, trigger: str, status: str | None = None,
                 error: str | None = None) -> None:
    """The audit log's row for a run that starts (``status`` None) or ends (its status and why)."""
    from healthcare_mlops.governance import audit
    from healthcare_mlops.identity import SYSTEM, Identity
    from healthcare_mlops.runtime.catalog import audit_log

    action = audit.JOB_STARTED if status is None else audit.JOB_ENDED
    comment = f"{job_key} run {run_id}" + ("" if status is None else f" {status}") + \
        (f": {error.splitlines()[0]}" if error else "")
    log = audit_log(settings)
    log.record(log.event("", action, Identity(trigger, SYSTEM), comment=comment))


@contextlib.contextmanager
def _admission(home: Path):
    """The lock under which runs are admitted and dead runs recorded (one process at a time)."""
    folder = Path(home) / MARKER_DIR
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ADMISSION_LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _live_markers(home: Path, job_key: str) -> list[dict]:
    folder = Path(home) / MARKER_DIR
    markers = []
    for path in sorted(folder.glob("*.json")):
        with contextlib.suppress(FileNotFoundError):       # a run that ended meanwhile
            marker = json.loads(path.read_text())
            if marker["job_key"] == job_key:
                markers.append(marker)
    return markers


def admit(settings: Settings, marker: RunMarker, limit: int, queue: bool, say=print) -> None:
    """Wait until ``marker``'s run may start under its job's ``max_concurrent_runs`` (``limit``).
    Without ``queue`` a run at the limit is refused (UserError) instead."""
    job_key, run_id, told = marker.data["job_key"], marker.data["run_id"], False
    while True:
        with _admission(settings.home):
            reconcile(settings)
            others = [m for m in _live_markers(settings.home, job_key) if m["run_id"] != run_id]
            running = [m["run_id"] for m in others if m.get("state", RUNNING) == RUNNING]
            ahead = [m["run_id"] for m in others if m.get("state") == QUEUED and m["run_id"] < run_id]
            if len(running) < limit and not ahead:
                marker.set_state(RUNNING)
                return
            if not queue:
                marker.remove()          # under the lock: no other run waits behind a refused one
                raise UserError(f"job '{job_key}' is at its max_concurrent_runs ({limit}): run "
                                f"{', '.join(map(str, running))} is running and the job's queue is not enabled; "
                                "this run is refused (try again when it ends)")
        if not told:
            say(f"job {job_key} run {run_id}: queued behind run {', '.join(map(str, running + ahead))} "
                f"(max_concurrent_runs {limit})")
            told = True
        time.sleep(QUEUE_POLL_SECONDS)


def start_run(settings: Settings, run_id: int, job_key: str, trigger: str, limit: int, queue: bool,
              say=print) -> RunMarker:
    """The marker of a run admitted under ``max_concurrent_runs`` (``admit``), its start in the audit log.

    Ctrl+C, SIGTERM or SIGHUP while it waits in the queue withdraws it: it never started."""
    marker = RunMarker(Path(settings.home).resolve(), run_id, job_key, trigger, dt.datetime.now(dt.timezone.utc))
    try:
        with stop_on_signals():
            admit(settings, marker, limit, queue, say)
        record_audit(settings, job_key, run_id, trigger)
    except BaseException:
        marker.remove()          # withdrawn, refused, or its start not recorded: it never started
        raise
    return marker


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
        reason = f"interrupted: the runner (pid {marker['runner_pid']}) died before the run finished"
        task, records = marker.get("task"), []
        if marker.get("state") == QUEUED:
            reason += " (while the run waited in the queue)"
        if task:
            pgid = _leftover_group(task)
            if pgid is not None:
                _signal_group(pgid, signal.SIGKILL)
                reason += f"; its task's processes (group {pgid}) were ended when the orphan was found"
            reason += f"; task '{task['task_key']}' was running"
            written = _tables_written_since(settings, dt.datetime.fromisoformat(task["start_time"]))
            if written:
                reason += "; committed since the task started: " + ", ".join(written)
            records.append(RunRecord(run_id=task["run_id"], parent_run_id=marker["run_id"], job_key=marker["job_key"],
                                     task_key=task["task_key"], status=INTERRUPTED, trigger=marker["trigger"],
                                     start_time=dt.datetime.fromisoformat(task["start_time"]), end_time=last_seen,
                                     error=reason, parameters=task.get("parameters")))
        records.append(RunRecord(run_id=marker["run_id"], job_key=marker["job_key"], status=INTERRUPTED,
                                 trigger=marker["trigger"], start_time=dt.datetime.fromisoformat(marker["start_time"]),
                                 end_time=last_seen, error=reason))
        run_history.append_runs(settings, records)
        record_audit(settings, marker["job_key"], marker["run_id"], marker["trigger"], INTERRUPTED, reason)
        path.unlink()
        recorded.append(marker["run_id"])
    return recorded
