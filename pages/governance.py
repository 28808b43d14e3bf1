"""Governance: champion next to challenger, the checklist, Approve / Reject and the versions on arrival; as views
picked when wanted, what drives each version, reproduction, the audit log and the model card."""

import pandas as pd
import streamlit as st

from app import actions, auth, data, explanation, reproduction, ui
from app.registry import version_status
from app.vocabulary import PROMOTION_PENDING, REJECTED, in_words
from app.vocabulary import approval_mode as approval_mode_of


def _interval(check: dict | None) -> str:
    return ui.interval((check or {}).get("interval"))


def _value(check: dict | None) -> str:
    """A check's value as read: the champion comparison is an MAE in USD, the rest plain numbers or words."""
    if check is None or check["value"] is None:
        return ""
    return ui.usd(check["value"]) + " MAE" if check["name"] == "champion_comparison" else str(check["value"])


def _checklist(champion_checks: list, challenger_checks: list) -> pd.DataFrame:
    """One row per check: in words, each version's verdict, value and interval, threshold, hard/soft.

    The words and the challenger's columns come first (what a decision reads, in view at 1440 px); a
    version without checks has no columns."""
    names = list(dict.fromkeys([c["name"] for c in challenger_checks] + [c["name"] for c in champion_checks]))
    by_name = {"champion": {c["name"]: c for c in champion_checks},
               "challenger": {c["name"]: c for c in challenger_checks}}
    roles = [role for role, checks in (("challenger", challenger_checks), ("champion", champion_checks)) if checks]
    rows = []
    for name in names:
        any_check = by_name["challenger"].get(name) or by_name["champion"][name]
        row = {"check": name, "what it means": in_words(any_check)}
        for role in roles:
            check = by_name[role].get(name)
            row[f"{role} verdict"] = "" if check is None else check["verdict"]
            row[f"{role} value"] = _value(check)
            row[f"{role} interval"] = _interval(check)
        row.update(threshold=any_check.get("threshold") or "not set", kind="hard" if any_check["hard"] else "soft")
        rows.append(row)
    return pd.DataFrame(rows)


def _decision(identity, challenger: int, checks: list, approval_mode: str, status: str) -> None:
    hard_failures = [c["name"] for c in checks if c["hard"] and c["verdict"] == "fail"]
    referred = [c for c in checks if c["hard"] and c["verdict"] == "refer"]
    st.subheader(f"Version {challenger}: rejected" if status == REJECTED else f"Decision on version {challenger}")
    if status:
        st.caption(f"Status of version {challenger}: `{status}`")
    if status == PROMOTION_PENDING:      # an approval is recorded; the job run has not promoted it yet
        st.info(f"Version {challenger} is {PROMOTION_PENDING}: a {actions.GOVERNANCE_JOB} run applies the "
                "approval and moves the champion alias and the serving endpoint (see Jobs).")
        return
    if status == REJECTED:
        st.warning(f"Version {challenger} was rejected: it is never promoted, and the champion stays. The next "
                   f"run of {data.run_hint('ml_training_pipeline')} registers a new challenger. The reason is in "
                   "the audit log (Show: Audit log).")
        return
    if referred and not hard_failures:
        st.warning(f"Version {challenger} was referred to you: " + " ".join(in_words(c) for c in referred)
                   + " Approve (with a comment) or reject.")
    elif hard_failures:
        st.warning(f"Version {challenger} fails hard checks: {', '.join(hard_failures)}. Approving it is an "
                   "override and needs a reason, which is recorded.")
    elif not checks:
        st.info(f"Version {challenger} has not been validated yet: there are no checks to look at. Validate it "
                f"first ({actions.GOVERNANCE_JOB} runs every check and, in manual mode, waits for your decision).")
        _validate_button(identity, challenger)
    else:
        st.success(f"Version {challenger} passes every hard check.")
    st.caption(f"Approval mode: **{approval_mode}**"
               + (" (a passing challenger is promoted by the governance job)" if approval_mode == "auto" else ""))
    if not auth.can(identity, "approve"):
        st.caption(f"Approve and Reject need the approver role; you are {identity.role}.")
        return
    comment = st.text_area("Comment (why)", key="gov_comment")
    override = st.text_input("Override reason (required to approve despite failing hard checks)",
                             key="gov_override") if hard_failures else ""
    approve, reject, _ = st.columns([1, 1, 3])
    # failing a hard check, approving is an override: not the suggested action, and only with a reason
    label, kind = ("Approve (override)", "secondary") if hard_failures else ("Approve", "primary")
    if approve.button(label, key="gov_approve", type=kind, disabled=bool(hard_failures) and not override.strip(),
                      help="Enter an override reason first: this version fails hard checks." if hard_failures
                      else None) and _has_comment(comment, "approve"):
        with ui.guard():
            run = actions.approve(identity, challenger, comment, override or None)
            _decided(f"Approved by {identity.user}: version {challenger} is {PROMOTION_PENDING} "
                     f"({actions.GOVERNANCE_JOB} run {run.run_id or 'started'} applies it; see Jobs).")
    if reject.button("Reject", key="gov_reject", type="primary" if hard_failures else "secondary") \
            and _has_comment(comment, "reject"):
        with ui.guard():
            run = actions.reject(identity, challenger, comment)
            _decided(f"Rejected by {identity.user}: version {challenger} (recorded; "
                     f"{actions.GOVERNANCE_JOB} run {run.run_id or 'started'} applies it).")


def _has_comment(comment: str, decision: str) -> bool:
    """A decision says why; asked for in the console's words (the CLI's check would say --comment)."""
    if comment.strip():
        return True
    st.error(f"Write in the Comment box why you {decision} this version first: the audit log records it.")
    return False


def _decided(message: str) -> None:
    """After a decision: the message, and a fresh comment box (the old comment belongs to the decision made)."""
    st.session_state["gov_message"] = message
    for key in ("gov_comment", "gov_override"):
        st.session_state.pop(key, None)
    st.rerun()


def _validate_button(identity, challenger: int) -> None:
    """Validate (run the checks) before deciding: the operator's Run now of the governance job."""
    if not auth.can(identity, "run_job"):
        st.caption(f"Validating needs the operator role; you are {identity.role}. An operator can run "
                   f"{data.run_hint(actions.GOVERNANCE_JOB)}.")
        return
    if st.button(f"Validate version {challenger} (run the checks)", key="gov_validate", type="primary"):
        with ui.guard():
            run = actions.run_job_now(identity, actions.GOVERNANCE_JOB, {"model_version": str(challenger)})
            st.session_state["gov_message"] = (f"Started {actions.GOVERNANCE_JOB} ({run.run_id or 'started'}) "
                                               f"for version {challenger}: its checks appear here when it ends.")
            st.rerun()


def render() -> None:
    st.title("Governance")
    if message := st.session_state.pop("gov_message", None):
        st.success(message)
    registry = data.registry()
    if not registry["exists"] or registry["versions"].empty:
        ui.empty_state("registered model", "ml_training_pipeline",
                       extra="It trains a challenger, checks it and promotes it (or waits for approval).")
        return
    settings = data.console_settings()
    approval_mode = approval_mode_of(settings.variables)
    champion, challenger = registry["champion"], registry["challenger"]
    checks = data.checks_by_version(registry["model_name"])
    audit = data.query("audit_log", model_name=registry["model_name"])
    status = version_status(registry["versions"], audit, challenger) if challenger is not None else ""

    _headline(registry, approval_mode, status)

    st.subheader("Champion and challenger")
    champion_checks = checks.get(str(champion), []) if champion is not None else []
    challenger_checks = checks.get(str(challenger), []) if challenger is not None else []
    if challenger is not None and challenger == champion:
        st.caption(f"The challenger (version {challenger}) is the champion: nothing is waiting for a decision.")
    if champion_checks or challenger_checks:
        checklist = _checklist(champion_checks, challenger_checks if challenger != champion else [])
        ui.table(checklist, key="gov_checklist", wide=("what it means",), lines=4, height=ui.every_row(checklist, 4))
    else:
        st.info("No checks recorded yet: " + data.run_hint("model_governance") + " validates the challenger.")
    if challenger is not None and challenger != champion:
        _decision(ui.identity(), challenger, challenger_checks, approval_mode, status)

    view, shown = ui.views("Show", list(VIEWS), key="gov_view")
    with shown:
        VIEWS[view](registry=registry, audit=audit)


def _versions(registry: dict, **_) -> None:
    """Every registered version, and since when the champion is the champion."""
    champion = registry["champion"]
    ui.table(registry["versions"], key="gov_versions")
    since = data.query("champion_since", model_name=registry["model_name"])
    if champion is not None and not since.empty:
        row = since[since["version"].astype(str) == str(champion)]
        if not row.empty:
            st.caption(f"Version {champion} has been the champion since {row['since'].iloc[0]:%Y-%m-%d %H:%M} UTC.")


def _audit_log(audit: pd.DataFrame, **_) -> None:
    if audit.empty:
        st.info("No governance events yet.")
    else:
        ui.table(audit.drop(columns=["event_id"]), key="gov_audit", wide=("comment", "override_reason"), lines=2)


def _model_card(registry: dict, **_) -> None:
    """The model card of the version picked (the champion's first)."""
    choices, champion = list(registry["versions"]["version"]), registry["champion"]
    default = choices.index(champion) if champion in choices else 0
    version = st.selectbox("Version", choices, index=default, key="gov_card_version")
    card = data.model_card(version)
    with st.container(border=True, key="gov_model_card"):
        st.markdown(card or f"_Version {version} has no model card yet (governance writes it when it validates)._")


# The decision (headline, checklist, Approve / Reject) on arrival; the rest when asked for.
VIEWS = {"Versions": _versions, "What drives each version": lambda **_: explanation.show_importance(
    data.global_importance()), "Reproduction": lambda registry, **_: reproduction.render(registry, ui.identity()),
    "Audit log": _audit_log, "Model card": _model_card}


def _challenger_tile(challenger, champion, status: str) -> tuple[str, str]:
    """The headline tile's label and value for the challenger alias: a rejected version is no longer a
    challenger (never promoted), so its tile says rejected; an approved one says its promotion is running.
    The state goes in the label: a value as long as the state would be cut off in a quarter-width tile."""
    if challenger is None:
        return "Challenger version", "none"
    if challenger != champion and status == REJECTED:
        return "Rejected version", str(challenger)
    if challenger != champion and status == PROMOTION_PENDING:
        return "Challenger (promotion running)", str(challenger)
    return "Challenger version", str(challenger)


def _headline(registry: dict, approval_mode: str, challenger_status: str) -> None:
    """The champion, the challenger (or, once rejected, the rejected version), how many versions there
    are and how promotion is approved."""
    champion, challenger = registry["champion"], registry["challenger"]
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Champion version", str(champion) if champion is not None else "none")
    c2.metric(*_challenger_tile(challenger, champion, challenger_status))
    c3.metric("Versions", f"{len(registry['versions']):,}")
    c4.metric("Approval mode", approval_mode)
    st.caption(f"Model `{registry['model_name']}`")
    if champion is None:
        st.info("No champion yet: nothing serves or scores until a version is promoted.")


with ui.guard():
    render()
