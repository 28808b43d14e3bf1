"""Risk: a scored batch's filters, numbers and review queue (CSV) on arrival; as views picked when wanted, the
risk-score distribution and the category mix."""

import streamlit as st

from app import actions, auth, charts, data, explanation, ui
from app.vocabulary import AGE_BANDS, REGIONS, SCORED_RATING_FACTORS, RiskBand

ALL_LABEL = "All"
SMOKER_CHOICES = {ALL_LABEL: data.ALL, "Smokers": "yes", "Non-smokers": "no"}
# The queue's columns on screen; the rest of each row (inputs, explanation) feeds the selected member's waterfall
# and is never sent to the browser as a table.
# The reason comes right after the score and category, so it is in view at 1440 px without a sideways scroll.
QUEUE_COLUMNS = ("patient_natural_key", "risk_score", "risk_category", "review_reasons", "predicted_annual_charges",
                 "interval_lower", "interval_upper", "region", "age_band", "smoker")


def _download(identity, scoring_date, members: int, params: dict) -> None:
    """The CSV download of the filtered view, for a role that may export; nothing is built for others."""
    if not auth.can(identity, "export"):
        st.caption(f"Downloading the filtered view needs the {auth.role_needed('export')} role; "
                   f"you are {identity.role}.")
        return
    settings, token = data.console_settings(), data.user_token()
    rows = f"{members:,} rows" if members <= data.MAX_CSV_ROWS else \
        f"the first {data.MAX_CSV_ROWS:,} of {members:,} rows; narrow the filters for the rest"
    # the bytes are built when the user clicks Download (on its own thread), checked again there
    st.download_button(f"Download the filtered view ({rows}, CSV)",
                       data=lambda: actions.export_risk_csv(identity, settings, token, params),
                       file_name=f"risk_{scoring_date}.csv", mime="text/csv", on_click="ignore",
                       key="risk_download", icon=":material/download:")


def _review_queue(params: dict, numbers: dict) -> None:
    """The members flagged for review in the filtered view, highest score first; a picked row's waterfall."""
    queue = data.query("review_queue", **params)
    review = numbers["summary"]["review"]
    shown = f"the {len(queue):,} highest scores of " if review > len(queue) else ""
    st.caption(f"Members flagged `requires_review` in this view ({shown}{review:,}), by de-identified key.")
    if queue.empty:
        st.info("Nobody in this view is flagged for review.")
        return
    visible = queue[list(QUEUE_COLUMNS)].assign(review_reasons=queue["review_reasons"].map(ui.reasons))
    picked = ui.table(visible, key="risk_review_queue", wide=("review_reasons",), lines=2, selectable=True)
    rows = picked.selection.rows
    if rows:
        member = queue.iloc[rows[0]]
        st.markdown(f"**Member {member['patient_natural_key']}**")
        explanation.show_member(member.to_dict(), key="risk_waterfall")
    else:
        st.caption("Select a member in the queue to see why: each input's effect on the prediction.")


def _distribution(params: dict, numbers: dict) -> None:
    """The risk scores of the filtered view, in bins coloured by category."""
    ui.chart(charts.risk_histogram, numbers["bins"], data.HISTOGRAM_BIN_WIDTH, key="risk_histogram")


def _category_mix(params: dict, numbers: dict) -> None:
    """The filtered view's category mix by a rating factor."""
    dimension = st.radio("Category mix by", list(SCORED_RATING_FACTORS), horizontal=True,
                         format_func=lambda d: d.replace("_", " "), key="risk_mix_dimension")
    ui.chart(charts.category_mix, numbers["mix"], dimension, key="risk_mix")


# What a user comes for first (the review queue) is drawn on arrival; the charts when asked for.
VIEWS = {"Review queue": _review_queue, "Score distribution": _distribution, "Category mix": _category_mix}


def render() -> None:
    st.title("Risk")
    dates = data.query("scoring_dates")
    if dates.empty:
        ui.empty_state("predictions", "batch_inference")
        return

    date_col, region_col, band_col, smoker_col = st.columns(4)
    scoring_date = date_col.selectbox("Scoring date", list(dates["scoring_date"]), key="risk_date")
    region = region_col.selectbox("Region", [ALL_LABEL, *REGIONS], key="risk_region")
    age_band = band_col.selectbox("Age band", [ALL_LABEL, *(label for _, label in AGE_BANDS)], key="risk_age_band")
    smoker = smoker_col.selectbox("Smoker", list(SMOKER_CHOICES), key="risk_smoker")
    params = data.risk_filters(scoring_date, "" if region == ALL_LABEL else region,
                               "" if age_band == ALL_LABEL else age_band, SMOKER_CHOICES[smoker])

    numbers = data.risk_view(data.query("risk_cube", scoring_date=scoring_date), params["region"],
                             params["age_band"], params["smoker"])
    summary = numbers["summary"]
    members = summary["members"]
    m1, m2, m3, m4 = st.columns(4)
    m1.metric("Members in view", ui.count(members))
    m2.metric("Flagged for review", ui.count(summary["review"]))
    m3.metric("Critical", ui.count(summary[RiskBand.CRITICAL.value]))
    m4.metric("Mean predicted charges", ui.usd(summary["mean_predicted"]))
    if members == 0:
        st.info("No members match these filters.")
        return

    view, shown = ui.views("Show", list(VIEWS), key="risk_view")
    with shown:
        VIEWS[view](params, numbers)
    _download(ui.identity(), scoring_date, members, params)


with ui.guard():
    render()
