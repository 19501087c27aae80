"""Alert intake: text and instants made storable, alerts refused alone, and the body cap's premises
checked against deploy/ itself."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import yaml

from bot.alerts import intake, webhook

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
GOOD = {
    "status": "firing",
    "labels": {"alertname": "QueueHighLag", "queue": "email"},
    "annotations": {"summary": "late"},
    "startsAt": "2026-11-30T03:00:00Z",
    "endsAt": "0001-01-01T00:00:00Z",
    "fingerprint": "abc",
}


def test_nul_and_lone_surrogates_become_replacement_characters_and_are_noted():
    """Names and values alike; the note says where."""
    notes: list[str] = []
    clean = intake.storable_map({"a\x00": "b\ud800c", "ok": "fine"}, "labels", notes)
    assert clean == {"a\ufffd": "b\ufffdc", "ok": "fine"} and notes == [
        "labels.a\ufffd: unstorable characters replaced"
    ]


def test_instants_outside_what_the_store_keeps_are_clamped_and_noted():
    """East of UTC on 0001-01-01, the zero instant itself, and 9999-12-31 west of UTC."""
    notes: list[str] = []
    east = datetime.fromisoformat("0001-01-01T00:00:00+01:00")
    west = datetime.fromisoformat("9999-12-31T23:30:00-01:00")
    assert intake.moment(east, "startsAt", notes) == intake.FIRST
    assert intake.moment(datetime(1, 1, 1, tzinfo=UTC), "startsAt", notes) == intake.FIRST
    assert intake.moment(west, "endsAt", notes) == intake.LAST
    fine = datetime(2026, 1, 1, tzinfo=UTC)
    assert intake.moment(fine, "startsAt", notes) == fine and len(notes) == 3


def test_each_alert_is_taken_or_refused_on_its_own():
    """A non-object, labels that are not strings and an unreadable start are refused by index;
    the good alert is kept and the one with NUL kept cleaned, its note in forge.cleaned."""
    nul = GOOD | {"fingerprint": "def", "annotations": {"summary": "a\x00b", "forge.cleaned": "x"}}
    taken = intake.take(
        [
            "not an alert",
            GOOD,
            GOOD | {"labels": {"alertname": "Bad", "n": 1}},
            nul,
            GOOD | {"startsAt": "0000-01-01T00:00:00Z"},
        ]
    )
    assert [(r["index"], r["alertname"]) for r in taken.refused] == [
        (0, None),
        (2, "Bad"),
        (4, "QueueHighLag"),
    ]
    assert [a.fingerprint for a in taken.alerts] == ["abc", "def"]
    assert taken.alerts[1].annotations == {
        "summary": "a\ufffdb",
        "forge.cleaned": "annotations.summary: unstorable characters replaced",
    }
    assert taken.alerts[0].annotations == {"summary": "late"} and taken.alerts[0].ends_at is None


def test_the_cap_rests_on_deploys_own_limits():
    """prometheus.yml's scrape label limits, alertmanager.yml's max_alerts and the rules' labels,
    annotations and expressions are what webhook.NOTIFICATION_CAP's arithmetic assumes."""
    prometheus = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    for scrape in prometheus["scrape_configs"]:
        assert scrape["label_limit"] <= webhook.SCRAPE_LABELS
        assert scrape["label_name_length_limit"] <= webhook.LABEL_NAME
        assert scrape["label_value_length_limit"] <= webhook.LABEL_VALUE
    manager = yaml.safe_load((DEPLOY / "alertmanager" / "alertmanager.yml").read_text())
    hooks = [h for r in manager["receivers"] for h in r.get("webhook_configs", [])]
    assert hooks and all(h["max_alerts"] == webhook.MAX_ALERTS for h in hooks)
    rules = yaml.safe_load((DEPLOY / "prometheus" / "queue-alerts.yml").read_text())
    for rule in (r for group in rules["groups"] for r in group["rules"]):
        assert len(rule["labels"]) + 1 <= webhook.RULE_LABELS
        assert len(rule["annotations"]) <= 4
        for text in rule["annotations"].values():
            assert len(re.sub(r"\{\{[^}]*\}\}", "", text).encode()) <= 120
            assert text.count("$labels.") <= 1 and text.count("$value") <= 1
        assert 512 + 40 + 3 * len(rule["expr"].encode()) <= webhook.GENERATOR_URL
    assert webhook.ALERT == 24_010 and webhook.NOTIFICATION_CAP == 24_065_036
