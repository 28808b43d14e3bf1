"""Score: a what-if form scored in real time by the champion (predicted charges, score, category, interval,
and why: the waterfall of each input's effect)."""

import streamlit as st

from app import data, explanation, ui
from app.vocabulary import AGE_RANGE, BMI_RANGE, CHILDREN_RANGE, REGIONS, plural


def render() -> None:
    st.title("Score")
    scorer = data.scorer()
    if scorer.needs_registered_champion and data.registry()["champion"] is None:
        ui.empty_state("champion model to score with", "ml_training_pipeline")
        return
    st.caption(f"Scores with {scorer.route}. Only the model's inputs are sent: no name, no identifier, "
               "and not sex (not an allowed rating factor).")

    c1, c2, c3 = st.columns(3)
    age = c1.number_input("Age", min_value=AGE_RANGE[0], max_value=AGE_RANGE[1], value=45, step=1, key="score_age")
    bmi = c2.number_input("BMI", min_value=float(BMI_RANGE[0]), max_value=float(BMI_RANGE[1]), value=31.0,
                          step=0.5, key="score_bmi")
    children = c3.number_input("Children", min_value=CHILDREN_RANGE[0], max_value=CHILDREN_RANGE[1], value=2,
                               step=1, key="score_children")
    c4, c5 = st.columns(2)
    region = c4.selectbox("Region", list(REGIONS), index=list(REGIONS).index("southeast"), key="score_region")
    smoker = c5.toggle("Smoker", value=False, key="score_smoker")
    record = {"age": int(age), "bmi": float(bmi), "children": int(children), "smoker": bool(smoker),
              "region": region}
    if st.button("Score", key="score_button", type="primary"):
        with ui.guard():
            st.session_state["score_result"] = (record, data.score_member(record))
    result = st.session_state.get("score_result")
    if result is None:
        return
    scored_record, prediction = result
    if scored_record != record:
        st.caption("The inputs changed since this result: press Score again.")
    st.subheader("Result")
    m1, m2, m3, m4 = st.columns([1, 1, 1, 2])          # the interval is two amounts: room to show both
    m1.metric("Predicted annual charges", ui.usd(prediction["predicted_annual_charges"]))
    m2.metric("Risk score", f"{float(prediction['risk_score']):.1f}")
    m3.metric("Risk category", str(prediction["risk_category"]))
    m4.metric("90 % interval", f"{ui.usd(prediction['interval_lower'])} – {ui.usd(prediction['interval_upper'])}")
    st.caption(f"For {scored_record['age']} years, BMI {scored_record['bmi']:g}, "
               f"{plural(scored_record['children'], 'child', 'children')}, "
               f"{'smoker' if scored_record['smoker'] else 'non-smoker'}, {scored_record['region']}.")
    st.caption(f"Answered by model version {prediction.get('model_version') or 'not said'} ({scorer.route}).")
    explanation.show_member({**scored_record, **prediction}, key="score_waterfall")


with ui.guard():
    render()
