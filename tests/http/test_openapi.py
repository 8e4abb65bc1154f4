"""The OpenAPI document against the bridge's own routes and core's JSON forms, without a hub.

Every route the app serves is documented with its methods and path parameters,
every schema is a valid JSON Schema whose references resolve, and the JSON
``secmon.jsonform`` makes of every notice kind, a context, a mute rule and a
command record matches the schema the document gives for it.
"""

from __future__ import annotations

import json
import re
from importlib import resources

import pytest
from jsonschema import Draft202012Validator, ValidationError

from secmon import jsonform
from secmon.protocol import messages as m
from secmon.protocol import notices
from secmon_http.app import make_app
from secmon_http.config import HttpSettings

OPENAPI = json.loads((resources.files("secmon_http") / "openapi.json").read_text())
UNDOCUMENTED = {"/static/{name}", "/static/{folder}/{name}"}  # the page's files


def conforms(schema_name: str, value) -> None:
    schema = {"$ref": f"#/components/schemas/{schema_name}", "components": OPENAPI["components"]}
    Draft202012Validator(schema).validate(value)


def served_routes() -> dict[str, set[str]]:
    settings = HttpSettings.from_env({"HTTP_NO_TOKEN": "true"})
    routes: dict[str, set[str]] = {}
    for route in make_app(settings).router.routes():
        path = re.sub(r"\{(\w+)(:[^}]*)?\}", r"{\1}", route.resource.canonical)
        if route.method != "HEAD" and path not in UNDOCUMENTED:
            routes.setdefault(path, set()).add(route.method.lower())
    return routes


def test_every_route_is_documented_with_its_methods_and_nothing_else():
    documented = {path: set(item) for path, item in OPENAPI["paths"].items()}
    assert documented == served_routes()


def test_every_path_parameter_is_declared():
    for path, item in OPENAPI["paths"].items():
        for method, operation in item.items():
            declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
            assert declared == set(re.findall(r"\{(\w+)\}", path)), (path, method)


def test_every_schema_is_valid_and_every_reference_resolves():
    for schema in OPENAPI["components"]["schemas"].values():
        Draft202012Validator.check_schema(schema)
    text = json.dumps(OPENAPI)
    for target in set(re.findall(r'"\$ref": "#/components/schemas/(\w+)"', text)):
        assert target in OPENAPI["components"]["schemas"], target


def test_every_mutating_route_documents_the_refusals_of_the_guard():
    for path, item in OPENAPI["paths"].items():
        for method, operation in item.items():
            if method in ("post", "delete") and path != "/login":
                assert {"401", "403"} <= set(operation["responses"]), (path, method)
            if "requestBody" in operation and path != "/login":
                assert "415" in operation["responses"], (path, method)


RULE = m.MuteRule(
    7, source="203.0.113.0/24", kind="ssh_failed_password", created=1_764_000_000.0, expires=1_764_007_200.0,
    reason="<img src=x onerror=alert(1)>", by="http:alice via secmon (uid 998)",
)  # fmt: skip
RECORD = m.CommandRecord(
    3, 1_764_000_000.0, m.Requester(998, "secmon", "http:alice"), "uptime", "-",
    [m.CommandOutcome(1, "web-1", m.SUCCESS, 0, 1_764_000_001.0), m.CommandOutcome(2, "db-1", m.ERROR)],
)  # fmt: skip
NODE = m.NodeRef(1, "web-1", "192.0.2.10")
GEO = m.SourceContext("DE", "Germany", "Berlin", 64496, "Example <b>Org</b>")
NOTICES = [
    m.NoticeUpdate(1, 1.0, notices.NODE_DOWN, node=NODE, outage=m.Outage(0.5, 60.0)),
    m.NoticeUpdate(2, 2.0, notices.NODE_BACK, node=NODE, outage=m.Outage(0.5, 60.0, away=90.5, events=4)),
    m.NoticeUpdate(3, 3.0, notices.COLLECTOR_FAILED, node=NODE, collector=m.CollectorState("auth", "journalctl died")),
    m.NoticeUpdate(4, 4.0, notices.COLLECTOR_OK, node=NODE, collector=m.CollectorState("auth")),
    m.NoticeUpdate(5, 5.0, notices.MUTE_ADDED, mute=m.MuteChange(RULE, RULE.by)),
    m.NoticeUpdate(6, 6.0, notices.MUTE_REMOVED, mute=m.MuteChange(RULE, "alice (uid 1000)")),
    m.NoticeUpdate(7, 7.0, notices.MUTE_EXPIRED, mute=m.MuteChange(m.MuteRule(8, user="backup"))),
    m.NoticeUpdate(8, 8.0, notices.SOURCE_FAILING, source=m.SourceFailures(
        "203.0.113.9", 30, 3, 2, 1.0, 8.0, ["web-1", "db-1", "mail-1"], ["root", "admin"], GEO)),
    m.NoticeUpdate(9, 9.0, notices.SOURCE_FAILING, source=m.SourceFailures(
        "203.0.113.9", 41, 3, 2, 1.0, 9.0, ended=True)),
    m.NoticeUpdate(10, 10.0, notices.COMMAND_RUN, command=RECORD),
    m.NoticeUpdate(11, 11.0, notices.COMMAND_RUN, command=m.CommandRecord(
        4, 11.0, m.Requester(0, "root"), "uptime", "nosuch", finished=11.0)),
]  # fmt: skip


@pytest.mark.parametrize("notice", NOTICES, ids=lambda n: f"{n.kind}-{n.seq}")
def test_every_notice_kind_matches_the_notice_schema_alone_and_as_an_update(notice):
    conforms("Notice", jsonform.notice_json(notice))
    conforms("Update", jsonform.update_json(notice))


def test_notice_list_mute_and_audit_record_match_their_schemas():
    conforms("NoticeList", {"notices": [jsonform.notice_json(n) for n in NOTICES], "last_seq": 11, "more": False})
    conforms("Mute", jsonform.mute_json(RULE))
    conforms("Mute", jsonform.mute_json(m.MuteRule(1, user="root")))
    conforms("AuditList", {"records": [jsonform.command_record_json(RECORD)], "more": True})


EVENT = m.AuthEvent(seq=5, time=1_764_000_000.0, kind="ssh_accepted", process="sshd", pid=7, user="alice",
                    host="203.0.113.9", port=4242, method="publickey")  # fmt: skip


@pytest.mark.parametrize(
    "context",
    [
        None,
        m.EventContext(source=GEO, new=["host", "asn", "country"], after_failures=12, muted=[3, 7]),
        m.EventContext(source=m.SourceContext(asn=64496), summarized=9),
        m.EventContext(muted=[1]),
    ],
)
def test_auth_updates_with_and_without_context_match_the_update_schema(context):
    update = m.AuthUpdate(5, 1, "web-1", "192.0.2.10", EVENT, context=context)
    value = jsonform.update_json(update)
    conforms("AuthUpdate", value)
    conforms("Update", value)
    conforms("Context", value["context"])


def test_a_notice_is_not_taken_for_an_auth_update_or_a_node_change():
    value = jsonform.notice_json(NOTICES[0])
    with pytest.raises(ValidationError):
        conforms("AuthUpdate", value)
    validator = Draft202012Validator({"$ref": "#/components/schemas/Update", "components": OPENAPI["components"]})
    [error] = list(validator.iter_errors({**value, "type": "auth"}))
    assert error.validator == "oneOf"
