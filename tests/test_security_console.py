"""Attacks on the console's exposure, the roles and the audit trail (issue 13, part A).

Each test is a probe that succeeded against the console before this part: the console
listening on every interface with approver rights for every visitor, a forged
``X-Forwarded-Email`` header choosing the user off Databricks, a viewer downloading the risk
CSV or validating, a rollback onto a rejected or failing version without a reason, state
changes (acknowledge, repair, jobs run, validate) with no audit row naming the user.

Everything is real: the console and the scoring server are started as their commands start
them, the socket table is the kernel's, the browser is Chromium, the registry is MLflow, the
tables are Delta. The one stand-in is the Databricks workspace: a local HTTP server answering
the SCIM requests the real databricks-sdk builds.

The lakehouse (module-scoped, copied per test that writes): console_lakehouse.py's
contract-shaped predictions and alerts, and a small real model (version 1 the champion,
version 2 the validated challenger). It has no features table, so both versions' performance
checks cannot be computed and fail: decisions on them need override reasons, as in the tests.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

from json_http import JsonHandler

from healthcare_mlops.composition import build_runtime
from healthcare_mlops.runtime.catalog import audit_log
from healthcare_mlops import identity
from healthcare_mlops.errors import UserError
from healthcare_mlops.governance import audit
from healthcare_mlops.identity import APPROVER, OPERATOR, VIEWER, Identity
from healthcare_mlops.settings import HOME_ENV, resolve_settings

pytestmark = pytest.mark.slow   # a lakehouse with a registered model (MLflow), console servers, CLI subprocesses

RUN = [sys.executable, "-c", "from healthcare_mlops.cli.main import run; run()"]
CHROMIUM = shutil.which("chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
FIXTURE_BUNDLE = REPO / "tests" / "fixtures" / "bundles" / "runner"
USER = "ops@example.com"
LISTEN = "0A"                      # TCP_LISTEN in /proc/net/tcp
EXPOSED_ENV = "HEALTHCARE_MLOPS_EXPOSED"     # what `app --expose` hands the console (identity.EXPOSED_ENV)


# -- helpers ----------------------------------------------------------------------------------------

def cli(*args: str, home: Path | None = None, role: str | None = None, env: dict | None = None,
        timeout: int = 300) -> subprocess.CompletedProcess:
    """``healthcare-mlops [--home H] ARGS`` in its own process, as ``USER`` with ``role``."""
    environment = {k: v for k, v in os.environ.items()
                   if k not in (HOME_ENV, identity.ROLE_ENV, EXPOSED_ENV)}
    environment[identity.USER_ENV] = USER
    if role:
        environment[identity.ROLE_ENV] = role
    environment.update(env or {})
    command = RUN + (["--home", str(home)] if home else []) + list(args)
    return subprocess.run(command, capture_output=True, text=True, env=environment, timeout=timeout, cwd=str(REPO))


def error_line(result: subprocess.CompletedProcess) -> str:
    """The one ``error: ...`` line of a failed command (its last stderr line)."""
    assert result.returncode != 0, result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines and lines[-1].startswith("error: "), result.stderr
    return lines[-1]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def external_address() -> str | None:
    """An address of this machine that is not loopback (None when it has none)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.254", 9))        # no packet is sent: this only picks a route
        except OSError:
            return None
        address = probe.getsockname()[0]
    return None if ipaddress.ip_address(address).is_loopback else address


def _decode(hex_address: str) -> ipaddress._BaseAddress:
    raw = bytes.fromhex(hex_address)
    if len(raw) == 4:
        return ipaddress.IPv4Address(raw[::-1])
    return ipaddress.IPv6Address(b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4)))


def listening_addresses(port: int) -> set:
    """The local addresses the kernel has a listening TCP socket on ``port`` for (IPv4 and IPv6)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        path = Path(table)
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            address, hex_port = fields[1].rsplit(":", 1)
            if fields[3] == LISTEN and int(hex_port, 16) == port:
                found.add(_decode(address))
    return found


def refuses_connection(address: str, port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(3)
        return probe.connect_ex((address, port)) != 0


@contextlib.contextmanager
def console(home: Path, *args: str, health_host: str = "127.0.0.1", env: dict | None = None):
    """``healthcare-mlops --home H app --port N ARGS`` until it answers /_stcore/health; yields (port, log)."""
    port = free_port()
    with serving(RUN + ["--home", str(home), "app", "--port", str(port), *args], port, home.parent,
                 health_host, env) as log_path:
        yield port, log_path


@contextlib.contextmanager
def serving(command: list[str], port: int, folder: Path, health_host: str = "127.0.0.1", env: dict | None = None):
    """Run ``command`` from the checkout until it answers /_stcore/health on ``port``; yields its log."""
    log_path = folder / f"console-{port}.log"
    folder.mkdir(parents=True, exist_ok=True)
    environment = {k: v for k, v in os.environ.items()
                   if k not in (HOME_ENV, identity.ROLE_ENV, EXPOSED_ENV) and not k.startswith("STREAMLIT_SERVER")}
    environment.update(env or {})
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, cwd=str(REPO),
                                   env=environment, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(f"http://{health_host}:{port}/_stcore/health", timeout=2) as response:
                    if response.status == 200:
                        break
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the console did not start:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.3)
        yield log_path
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def events(settings, action: str):
    history = audit_log(settings).history()
    return history[history["action"] == action]


# -- fixtures -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def lakehouse(tmp_path_factory) -> Path:
    from console_lakehouse import build_lakehouse

    root = tmp_path_factory.mktemp("security") / "lakehouse"
    build_lakehouse(root, 2000)
    return root


@pytest.fixture
def home(lakehouse, private_home, monkeypatch) -> Path:
    """A writable copy of the lakehouse, the console pointed at it (local target)."""
    monkeypatch.delenv("HEALTHCARE_MLOPS_TARGET", raising=False)
    monkeypatch.delenv(EXPOSED_ENV, raising=False)
    monkeypatch.setenv(identity.USER_ENV, USER)
    return private_home(lakehouse)


def governance_as(home: Path, role: str, **variables):

    return build_runtime(resolve_settings("local", home, variables)).governance(Identity(USER, role))


# -- 1. where the console listens ------------------------------------------------------------------

def test_the_console_listens_on_loopback_only_by_default(tmp_path):
    with console(tmp_path / "lakehouse") as (port, log):
        addresses = listening_addresses(port)
        assert addresses and all(address.is_loopback for address in addresses), addresses
        outside = external_address()
        if outside:
            assert refuses_connection(outside, port)
        assert f"console: http://localhost:{port}" in log.read_text()


def test_a_console_started_by_hand_from_the_checkout_listens_on_loopback(tmp_path):
    """app.yaml's command (``python -m app.serve run app/main.py``) and a bare ``streamlit run`` read the
    checkout's .streamlit/config.toml; the address Databricks Apps sets in the environment still wins
    behind its proxy."""
    by_hand = [sys.executable, "-m", "streamlit", "run", "app/main.py", "--server.headless", "true"]
    app_yaml = [sys.executable, "-m", "app.serve", "run", "app/main.py", "--server.headless", "true"]
    env = {HOME_ENV: str(tmp_path / "lakehouse"), "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false"}
    for bare in (by_hand, app_yaml):
        port = free_port()
        with serving(bare + ["--server.port", str(port)], port, tmp_path, env=env):
            addresses = listening_addresses(port)
            assert addresses and all(address.is_loopback for address in addresses), addresses
    port = free_port()
    with serving(app_yaml + ["--server.port", str(port)], port, tmp_path,
                 env={**env, "STREAMLIT_SERVER_ADDRESS": "0.0.0.0"}):   # nosec B104  # what Databricks Apps sets
        assert ipaddress.ip_address("0.0.0.0") in listening_addresses(port)


def test_a_host_beyond_loopback_is_refused_without_expose(tmp_path):
    for command in (["app", "--host", "0.0.0.0"], ["serve", "--host", "0.0.0.0"]):
        result = cli(*command, "--port", str(free_port()), home=tmp_path / "lakehouse")
        assert "would serve" in error_line(result) and "--expose" in error_line(result)
    assert not (tmp_path / "lakehouse").exists()       # refused before anything was started or written


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (Debian: apt-get install -y chromium)")
def test_an_exposed_console_gives_its_visitors_the_viewer_role(tmp_path):
    from playwright.sync_api import sync_playwright

    outside = external_address() or "127.0.0.1"
    with console(tmp_path / "lakehouse", "--host", "0.0.0.0", "--expose", health_host=outside) as (port, _):
        assert ipaddress.ip_address("0.0.0.0") in listening_addresses(port)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page()
                page.goto(f"http://{outside}:{port}")
                sidebar = page.locator('[data-testid="stSidebarUserContent"]')
                sidebar.get_by_text("role:").wait_for(timeout=120_000)
                assert "role: viewer" in " ".join(sidebar.inner_text().split())
            finally:
                browser.close()


def test_the_exposed_default_is_viewer_and_a_configured_role_still_counts(monkeypatch):
    monkeypatch.delenv(identity.ROLE_ENV, raising=False)
    monkeypatch.delenv(EXPOSED_ENV, raising=False)
    assert identity.local_identity().role == APPROVER            # the laptop's owner, on loopback
    monkeypatch.setenv(EXPOSED_ENV, "1")
    assert identity.local_identity().role == VIEWER
    monkeypatch.setenv(identity.ROLE_ENV, OPERATOR)
    assert identity.local_identity().role == OPERATOR


# -- 2. the user off Databricks against a workspace target ------------------------------------------

class Workspace(JsonHandler):
    """The two SCIM reads a console can make: the signed-in user, and a user looked up by name."""

    requests: list = []
    me = {"userName": "jane@example.com", "groups": [{"display": "healthcare-mlops-operators", "value": "1"}]}
    approvers = [{"display": "healthcare-mlops-approvers", "value": "2"}]

    def do_GET(self):   # noqa: N802 (the http.server name)
        Workspace.requests.append((self.path, self.headers.get("Authorization")))
        if self.path.startswith("/api/2.0/preview/scim/v2/Me"):
            self.send_json(Workspace.me)
        elif self.path.startswith("/api/2.0/preview/scim/v2/Users") and "startIndex=1" in self.path:
            self.send_json({"Resources": [{"id": "7", "userName": "owner@example.com", "groups": Workspace.approvers}],
                        "totalResults": 1, "startIndex": 1, "itemsPerPage": 1})
        elif self.path.startswith("/api/2.0/preview/scim/v2/Users"):
            self.send_json({"Resources": [], "totalResults": 1, "itemsPerPage": 0})
        else:
            self.send_error(404)



@pytest.fixture
def workspace(monkeypatch):
    """A local stand-in for the workspace's HTTP API; the real SDK is pointed at it as the CLI's auth would."""
    from app import auth, data

    server = ThreadingHTTPServer(("127.0.0.1", 0), Workspace)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    Workspace.requests = []
    monkeypatch.setenv("DATABRICKS_HOST", f"http://127.0.0.1:{server.server_port}")
    monkeypatch.setenv("DATABRICKS_TOKEN", "dapi-signed-in")
    monkeypatch.delenv("DATABRICKS_APP_NAME", raising=False)
    monkeypatch.setenv("HEALTHCARE_MLOPS_TARGET", "prod")
    caches = [data._target, data.workspace_client, auth._groups, *[getattr(auth, name) for name in
                                                                    ("_signed_in_identity",) if hasattr(auth, name)]]
    for cache in caches:
        cache.clear()
    yield Workspace.requests
    for cache in caches:
        cache.clear()
    server.shutdown()


def test_off_databricks_the_console_takes_the_signed_in_user_not_a_header_or_the_environment(workspace,
                                                                                             monkeypatch):
    from app import auth, data

    monkeypatch.setenv(identity.ROLE_ENV, APPROVER)                     # the environment says approver
    forged = {auth.EMAIL_HEADER: "owner@example.com"}                   # and so does a forged header
    monkeypatch.setattr(data, "request_header", forged.get)
    assert auth.current_identity() == Identity("jane@example.com", OPERATOR)
    scim = [(path, token) for path, token in workspace if path.startswith("/api/")]
    assert scim == [("/api/2.0/preview/scim/v2/Me", "Bearer dapi-signed-in")]


# -- 3. the roles matrix ----------------------------------------------------------------------------

def test_each_role_may_do_what_the_lower_roles_may_and_its_own_grants():
    roles = identity.ROLES
    assert roles == ("viewer", "analyst", "operator", "approver")
    expected = {"viewer": set(), "analyst": {"export"},
                "operator": {"export", "acknowledge", "run_job", "validate", "reproduce", "repair", "read_identifiers"},
                "approver": {"export", "acknowledge", "run_job", "validate", "reproduce", "repair", "read_identifiers",
                             "approve", "reject", "promote", "rollback"}}
    for role in roles:
        allowed = {action for action in expected["approver"] if Identity(USER, role).may(action)}
        assert allowed == expected[role], role
    for action in expected["approver"]:
        lowest = roles.index(identity.role_needed(action))
        for role in roles:
            assert Identity(USER, role).may(action) == (roles.index(role) >= lowest), (role, action)


def test_the_analysts_group_gives_the_analyst_role():
    members = identity.RoleMembers.from_variables(resolve_settings("prod").variables)
    assert identity.role_for("a@example.com", ["healthcare-mlops-analysts"], members) == identity.ANALYST
    assert identity.role_for("a@example.com", ["healthcare-mlops-analysts", "healthcare-mlops-operators"],
                             members) == OPERATOR


def _risk_page(role: str, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv(identity.ROLE_ENV, role)
    at = AppTest.from_file(str(REPO / "app" / "main.py"), default_timeout=120)
    at.run()
    at.switch_page("../pages/risk.py").run()
    assert not at.exception, at.exception[0].value
    return at


def test_a_viewer_gets_no_csv_download_and_the_export_is_refused_before_a_row_is_read(home, monkeypatch):
    from app import actions, data

    at = _risk_page(VIEWER, monkeypatch)
    assert not at.get("download_button")
    assert any("needs the analyst role; you are viewer" in c.value for c in at.caption)
    params = data.risk_filters(data.latest_scoring_date(), "", "", data.ALL)
    with pytest.raises(UserError, match="export needs the analyst role"):
        actions.export_risk_csv(Identity(USER, VIEWER), data.console_settings(), None, params)


def test_an_analyst_downloads_the_filtered_view(home, monkeypatch):
    import io

    import pandas as pd
    from deltalake import DeltaTable

    from app import actions, data
    from healthcare_mlops.tables import ML_PATIENT_PREDICTIONS

    at = _risk_page(identity.ANALYST, monkeypatch)
    assert at.get("download_button")[0].proto.label.startswith("Download the filtered view")
    day = data.latest_scoring_date()
    params = data.risk_filters(day, "southeast", "", data.ALL)
    exported = pd.read_csv(io.BytesIO(actions.export_risk_csv(Identity(USER, identity.ANALYST),
                                                              data.console_settings(), None, params)))
    predictions = DeltaTable(resolve_settings("local", home).table_location(ML_PATIENT_PREDICTIONS)).to_pandas()
    view = predictions[(predictions["scoring_date"] == day) & (predictions["region"] == "southeast")]
    assert len(exported) == len(view) > 0


def test_a_viewer_cannot_validate_and_nothing_is_written(home):
    settings = resolve_settings("local", home)
    governance = governance_as(home, VIEWER)
    tags_before = governance.registry.client.get_model_version(governance.model_name, "2").tags
    rows_before = len(audit_log(settings).history())
    with pytest.raises(UserError, match="validate needs the operator role"):
        governance.validate(2)
    assert "validate needs the operator role" in error_line(cli("governance", "validate", "--version", "2",
                                                                home=home, role=VIEWER))
    assert governance.registry.client.get_model_version(governance.model_name, "2").tags == tags_before
    assert len(audit_log(settings).history()) == rows_before


# -- 4. rollback onto a rejected or failing version -------------------------------------------------

def _champion_two(home: Path):
    """Version 2 approved and promoted by an approver (version 1, the champion before, retired)."""
    governance = governance_as(home, APPROVER)
    governance.approve(2, "new registration", override_reason="small synthetic sample")
    assert governance.alias("champion") == "2"
    return governance


def test_rollback_onto_a_rejected_version_needs_a_recorded_reason(home):
    governance = _champion_two(home)
    governance.reject(1, "its scores leaked into a report")
    refused = error_line(cli("governance", "rollback", "--to-version", "1", home=home, role=APPROVER))
    assert "needs --override-reason" in refused and "it was rejected" in refused
    assert governance.alias("champion") == "2"
    ok = cli("governance", "rollback", "--to-version", "1", "--override-reason", "v2 breaks scoring",
             home=home, role=APPROVER)
    assert ok.returncode == 0, ok.stderr
    assert governance.alias("champion") == "1"
    settings = resolve_settings("local", home)
    rolled = events(settings, audit.ROLLED_BACK)
    assert list(rolled["override_reason"]) == ["v2 breaks scoring"]
    assert list(zip(rolled["actor"], rolled["role"])) == [(USER, APPROVER)]
    for action in (audit.REJECTED, audit.PROMOTED):       # one row per change, each naming the user
        mine = events(settings, action)
        assert list(mine[mine["actor"] == USER]["version"]) == ["1" if action == audit.REJECTED else "2"]


def test_rollback_onto_a_version_failing_hard_checks_needs_a_recorded_reason(home):
    governance = _champion_two(home)
    # version 1 was champion by an override: its performance checks cannot be computed here
    # (the lakehouse has no features table to re-score), so they fail
    failures = [c.name for c in governance.latest_validation("1").failures]
    assert "r2" in failures
    with pytest.raises(UserError, match="needs --override-reason.*hard checks fail: .*r2"):
        governance.rollback(1)
    assert governance.alias("champion") == "2"
    governance.rollback(1, override_reason="v2 pulled by the regulator")
    assert governance.alias("champion") == "1"
    assert list(events(resolve_settings("local", home), audit.ROLLED_BACK)["override_reason"]) == \
        ["v2 pulled by the regulator"]


# -- 5. one audit row per state change, with the user -----------------------------------------------

def test_each_person_who_validates_gets_one_row_naming_them(home):

    settings = resolve_settings("local", home)
    before = len(events(settings, audit.VALIDATED))
    for who in ("first@example.com", "second@example.com"):      # the same result twice, two people
        build_runtime(settings).governance(Identity(who, OPERATOR)).validate(2)
    validated = events(settings, audit.VALIDATED)
    assert len(validated) == before + 2
    assert list(zip(validated["actor"], validated["role"]))[-2:] == \
        [("first@example.com", OPERATOR), ("second@example.com", OPERATOR)]


def test_acknowledging_writes_one_audit_row_on_the_cli_and_in_the_console(home):
    from app import actions
    from healthcare_mlops.monitoring.alerts import list_alerts
    from healthcare_mlops.runtime.catalog import table_catalog

    settings = resolve_settings("local", home)
    first, second = list(list_alerts(table_catalog(settings))["alert_id"])[:2]
    ok = cli("alerts", "ack", first, "--comment", "campaign in the southeast", home=home, role=OPERATOR)
    assert ok.returncode == 0, ok.stderr
    actions.acknowledge(Identity("console@example.com", OPERATOR), second)
    acknowledged = events(settings, audit.ACKNOWLEDGED)
    assert sorted(zip(acknowledged["actor"], acknowledged["role"])) == \
        [("console@example.com", OPERATOR), (USER, OPERATOR)]
    assert sum(first in comment for comment in acknowledged["comment"]) == 1
    assert sum(second in comment for comment in acknowledged["comment"]) == 1


def test_console_decisions_write_one_row_each_naming_the_approver(home):
    from app import actions

    settings = resolve_settings("local", home)
    approver = Identity("owner@example.com", APPROVER)
    # the console records; the model_governance run each decision starts applies it (as the job)
    assert actions.approve(approver, 2, "new registration", "small synthetic sample").process.wait(600) == 0
    assert actions.reject(approver, 1, "retired for good").process.wait(600) == 0
    everyone = audit_log(settings).history()
    mine = everyone[everyone["actor"] == approver.user]
    decided = [(audit.APPROVED if action == audit.OVERRIDDEN else action, version)     # fails hard checks here
               for action, version in zip(mine["action"], mine["version"])]
    assert sorted(decided) == sorted([(audit.APPROVED, "2"), (audit.RAN_JOB, ""), (audit.REJECTED, "1"),
                                      (audit.RAN_JOB, "")])
    assert set(mine["role"]) == {APPROVER}
    promoted = everyone[(everyone["action"] == audit.PROMOTED) & (everyone["version"] == "2")]
    assert list(promoted["actor"]) == ["job:local"]
    # version 1, now older than the champion, is not promoted but its rejection is applied
    assert governance_as(home, VIEWER).registry.client.get_model_version(settings.model_name, "1") \
        .tags["governance_status"] == "rejected"


def test_status_only_reads_an_interrupted_promotion_and_the_explicit_repair_writes_one_row(home, monkeypatch):
    """Issue 25 item 4: neither building ``Governance`` nor ``governance status`` repairs (writes),
    even for a role that may repair; status names the interrupted move, ``governance repair``
    finishes or undoes it once and the audit names who; a viewer may not repair."""
    from typer.testing import CliRunner

    from healthcare_mlops.cli.main import app
    from healthcare_mlops.governance.service import INTENT_TAG

    script = ("from healthcare_mlops.composition import build_runtime\n"
              "from healthcare_mlops.identity import Identity\n"
              "from healthcare_mlops.settings import resolve_settings\n"
              f"build_runtime(resolve_settings('local', {str(home)!r})).governance(Identity('a', 'approver'))"
              ".approve(2, 'ship', override_reason='small synthetic sample')\n")
    killed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            env={**os.environ, "HEALTHCARE_MLOPS_FAILPOINT": "promotion:after_alias"})
    assert killed.returncode == 137, killed.stderr[-2000:]
    settings = resolve_settings("local", home)

    def registry_and_audit() -> tuple:
        client = governance_as(home, VIEWER).registry.client
        model = client.get_registered_model(settings.model_name)
        versions = {v: dict(client.get_model_version(settings.model_name, v).tags) for v in ("1", "2")}
        return dict(model.tags), dict(model.aliases), versions, audit_log(settings).history().to_json()

    before = registry_and_audit()
    assert INTENT_TAG in before[0] and str(before[1]["champion"]) == "2"  # the move is half done
    operator = governance_as(home, OPERATOR)                              # may repair; building does not
    assert operator.status()["interrupted"] == 2
    monkeypatch.setenv(identity.ROLE_ENV, OPERATOR)
    cli = CliRunner()
    shown = cli.invoke(app, ["--home", str(home), "governance", "status"])
    assert shown.exit_code == 0, shown.output
    assert "an interrupted promotion of version 2: run `healthcare-mlops governance repair`" in shown.output
    with pytest.raises(UserError, match="repair needs the operator role"):
        governance_as(home, VIEWER).recover()
    assert registry_and_audit() == before
    assert events(settings, audit.REPAIRED).empty

    repaired = cli.invoke(app, ["--home", str(home), "governance", "repair"])
    assert repaired.exit_code == 0, repaired.output
    assert "repair: rolled back" in repaired.output
    assert INTENT_TAG not in operator.registry.client.get_registered_model(operator.model_name).tags
    assert operator.alias("champion") == "1"                  # the half-done promotion was undone
    rows = events(settings, audit.REPAIRED)
    assert list(zip(rows["actor"], rows["role"], rows["version"])) == [(USER, OPERATOR, "2")]
    assert "rolled back" in rows["comment"].iloc[0]
    again = cli.invoke(app, ["--home", str(home), "governance", "repair"])
    assert again.exit_code == 0 and "nothing to repair" in again.output, again.output
    assert operator.status()["interrupted"] is None and len(events(settings, audit.REPAIRED)) == 1


def test_jobs_run_needs_the_operator_role_and_writes_one_row_naming_the_user(tmp_path, monkeypatch):
    from healthcare_mlops.bundle.definition import BUNDLE_ROOT_ENV

    root = tmp_path / "lakehouse"
    bundle = {BUNDLE_ROOT_ENV: str(FIXTURE_BUNDLE)}
    refused = cli("jobs", "run", "chain", "--quiet", home=root, role=VIEWER, env=bundle)
    assert "run_job needs the operator role" in error_line(refused)
    assert not root.exists()                                  # no run, no table
    ok = cli("jobs", "run", "chain", "--quiet", "--param", "label=x", home=root, role=OPERATOR, env=bundle)
    assert ok.returncode == 0, ok.stderr
    monkeypatch.setenv(BUNDLE_ROOT_ENV, str(FIXTURE_BUNDLE))
    ran = events(resolve_settings("local", root), audit.RAN_JOB)
    assert list(zip(ran["actor"], ran["role"])) == [(USER, OPERATOR)]
    assert ran["comment"].iloc[0].startswith("chain run ") and '"label": "x"' in ran["comment"].iloc[0]


def test_a_workspace_command_without_credentials_says_so_in_one_line(tmp_path):
    unsigned = {"DATABRICKS_CONFIG_FILE": str(tmp_path / "no.databrickscfg"), "DATABRICKS_HOST": "",
                "DATABRICKS_TOKEN": ""}
    refused = cli("--target", "prod", "governance", "status", home=tmp_path / "lakehouse", env=unsigned)
    assert "cannot tell who you are on prod" in error_line(refused)
