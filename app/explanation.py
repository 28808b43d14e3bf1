"""One member's explanation on a page: the waterfall and the reasons in words (Risk and Score share it)."""

from __future__ import annotations

import math

import streamlit as st

from app import charts, ui


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def show_member(member: dict, key: str) -> None:
    """The waterfall (base -> each input -> prediction) and the top reasons of ``member``
    (a predictions row or a real-time answer with reasons)."""
    if _missing(member.get("base_charges")):
        st.info("No explanation for this member: scored before explanations existed, or by a model version "
                "that cannot be explained exactly.")
        return
    if member.get("outside_training_range"):
        st.warning(f"Outside what the model was trained on: {member['outside_training_range']}. "
                   "The prediction extrapolates there.")
    ui.chart(charts.member_waterfall, member, key=key)
    if member.get("top_reasons"):
        st.markdown(f"**Why:** {member['top_reasons']}")


def show_importance(importance) -> None:
    """The champion's global importance next to the challenger's (``input, version, usd``)."""
    if importance.empty:
        st.info("No global importance recorded for these versions (trained before explanations).")
        return
    ui.chart(charts.importance_bars, importance, key="gov_importance")
    st.caption("Mean |contribution| of each input over the version's training frame, in USD: what the model "
               "relies on. The champion's are also the composite drift score's weights.")
