"""Attacks on the scoring server (`healthcare-mlops serve`), issue 24 items 4 and 5.

On the main of commit e6e523a the server refused ``ssn`` but answered 200 for ``SSN``,
``FirstName``, ``Gender`` ... (MLflow dropped the undeclared field without a word); it answered
400,000 records and 32 MB; it copied a refused 100 MB value twice into its 400; empty
``dataframe_records`` got a stack trace with file paths; no Content-Type or deep nesting got a
bare 500. Each probe goes to the real server over real HTTP (the ``server`` fixture of
test_serving.py: the champion of the session's pipeline home).
"""

from __future__ import annotations

import http.client
import json
import urllib.parse

from test_serving import GOOD, server  # noqa: F401  # the fixture, used by name

from healthcare_mlops.modeling.scoring_request import MAX_RECORDS, MAX_REQUEST_BYTES
from healthcare_mlops.privacy import prohibited_inputs

# Item 4: every spelling the probe got a 200 for.
SPELLINGS = ("SSN", "Ssn", "DOB", "Email", "FirstName", "Sex", "SEX", "Gender", "MemberID", "ZIP",
             "social_security_number", "first-name", "Date Of Birth", "zipCode")
ALLOWED = ("age", "bmi", "children", "smoker", "region")


def send(url: str, body: bytes, headers: dict | None = None) -> tuple[int, dict, bytes]:
    """POST ``body`` as it is to ``url``/invocations: (status, headers, raw answer)."""
    parts = urllib.parse.urlparse(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)
    try:
        connection.request("POST", "/invocations", body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def json_post(url: str, payload, content_type: str = "application/json") -> tuple[int, dict, bytes]:
    return send(url, json.dumps(payload).encode(), {"Content-Type": content_type})


def assert_json_refusal(status: int, headers: dict, raw: bytes, expected_status: int = 400) -> dict:
    """A JSON refusal: the status, no stack trace, no file path, no DataFrame dump."""
    assert status == expected_status, raw[:500]
    assert headers.get("content-type", "").startswith("application/json"), headers
    body = json.loads(raw)
    text = raw.decode()
    for leak in ("stack_trace", "Traceback", ".py", "site-packages", "Failed to predict data"):
        assert leak not in text, text[:1000]
    return body


def test_item_4_prohibited_fields_are_matched_in_any_spelling():
    """The one list (privacy.py) serves the server and governance's "no prohibited inputs" check."""
    from healthcare_mlops.governance.checks import FAIL, PASS, prohibited_inputs_check

    assert prohibited_inputs(SPELLINGS) == list(SPELLINGS)
    assert prohibited_inputs([*ALLOWED, "Age", "BMI", "annual_charges", "risk_score", "patient_natural_key"]) == []
    assert prohibited_inputs_check(list(ALLOWED)).verdict == PASS
    for spelling in SPELLINGS:
        check = prohibited_inputs_check([*ALLOWED, spelling])
        assert (check.verdict, check.value) == (FAIL, spelling)


def test_item_4_the_server_refuses_a_prohibited_field_in_any_spelling(server):  # noqa: F811
    for spelling in SPELLINGS:
        for params in ({}, {"params": {"on_error": "skip"}}):
            status, headers, raw = json_post(server["url"], {"dataframe_records": [GOOD, {**GOOD, spelling: "x"}],
                                                             **params})
            body = assert_json_refusal(status, headers, raw)
            assert body["errors"] == [{"record": None, "field": spelling, "message": body["errors"][0]["message"]}]
            assert "prohibited input" in body["message"], spelling
        status, _, raw = json_post(server["url"], {"dataframe_split": {"columns": [*ALLOWED, spelling],
                                                                       "data": [[*GOOD.values(), "x"]]}})
        assert status == 400 and json.loads(raw)["errors"][0]["field"] == spelling
    status, _, raw = json_post(server["url"], {"dataframe_records": [GOOD]})     # the allowed fields still score
    assert status == 200, raw[:500]
    assert json.loads(raw)["predictions"][0]["risk_category"]


def test_item_5_a_request_over_the_size_or_record_limit_is_refused(server):  # noqa: F811
    status, headers, raw = json_post(server["url"], {"dataframe_records": [GOOD] * (MAX_RECORDS + 1)})
    body = assert_json_refusal(status, headers, raw)
    assert body["message"] == f"dataframe_records: more than {MAX_RECORDS} records in one request"
    big = json.dumps({"dataframe_records": [{**GOOD, "region": "x" * MAX_REQUEST_BYTES}]}).encode()
    body = assert_json_refusal(*send(server["url"], big, {"Content-Type": "application/json"}), expected_status=413)
    assert body["message"] == f"body: larger than {MAX_REQUEST_BYTES} bytes"
    status, _, raw = json_post(server["url"], {"dataframe_records": [GOOD] * MAX_RECORDS})
    assert status == 200 and len(json.loads(raw)["predictions"]) == MAX_RECORDS


def test_item_5_a_refused_value_is_never_copied_into_the_answer(server):  # noqa: F811
    value = "Q" * 1_000_000           # a million-character field, under the size limit
    for record in ({**GOOD, "region": value}, {**GOOD, "age": value}, {**GOOD, "smoker": value}):
        status, headers, raw = json_post(server["url"], {"dataframe_records": [record]})
        body = assert_json_refusal(status, headers, raw)
        assert "QQQQ" not in raw.decode() and len(raw) < 2_000, raw[:300]
        field = next(k for k, v in record.items() if v is value)
        assert body["errors"][0]["field"] == field
    status, _, raw = json_post(server["url"], {"dataframe_records": [GOOD], "params": {"on_error": value}})
    assert status == 400 and "QQQQ" not in raw.decode()
    assert json.loads(raw)["message"] == "params.on_error: expected one of fail, skip"


MALFORMED = (  # (probe, body, headers, the start of the refusal's message)
    ("empty records", b'{"dataframe_records": []}', {"Content-Type": "application/json"},
     "dataframe_records: no records"),
    ("no content type", json.dumps({"dataframe_records": [GOOD]}).encode(), {},
     "Content-Type: expected application/json"),
    ("csv", b"age,bmi\n1,2\n", {"Content-Type": "text/csv"}, "Content-Type: expected application/json"),
    ("deep nesting", b'{"dataframe_records": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
     {"Content-Type": "application/json"}, "body: not a JSON document"),
    ("nested value", json.dumps({"dataframe_records": [{**GOOD, "age": [[[[35]]]]}]}).encode(),
     {"Content-Type": "application/json"}, "age: a nested value"),
    ("not JSON", b"{'dataframe_records': ", {"Content-Type": "application/json"}, "body: not a JSON document"),
    ("not UTF-8", b'{"dataframe_records": [{"region": "\xff"}]}', {"Content-Type": "application/json"},
     "body: not a JSON document"),
    ("a list", b"[1, 2]", {"Content-Type": "application/json"}, "body: expected an object"),
    ("both formats", json.dumps({"dataframe_records": [GOOD], "dataframe_split": {}}).encode(),
     {"Content-Type": "application/json"}, "body: expected an object with one of"),
    ("other key", json.dumps({"dataframe_records": [GOOD], "inputs": [1]}).encode(),
     {"Content-Type": "application/json"}, "inputs: not a request field"),
    ("ragged split", json.dumps({"dataframe_split": {"columns": ["age"], "data": [[1, 2]]}}).encode(),
     {"Content-Type": "application/json"}, "dataframe_split.data: expected rows of 1 values"),
    ("records of text", json.dumps({"dataframe_records": ["age"]}).encode(),
     {"Content-Type": "application/json"}, "dataframe_records: expected a list of objects"),
    ("params list", json.dumps({"dataframe_records": [GOOD], "params": [1]}).encode(),
     {"Content-Type": "application/json"}, "params: expected an object"),
)


def test_item_5_every_malformed_request_gets_a_json_400(server):  # noqa: F811
    for probe, body, headers, message in MALFORMED:
        answer = assert_json_refusal(*send(server["url"], body, headers))
        assert answer["message"].startswith(message), (probe, answer)
