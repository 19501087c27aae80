"""The demo's pieces that need no service: job failures, key ownership, the notification shape."""

from __future__ import annotations

from pathlib import Path

from bot.alerts.webhook import Notification, authorized
from bot.demo import alert
from bot.demo.jobs import REASONS, SPECS, failure, job, options
from bot.demo.places import Places


def test_email_fails_a_share_with_realistic_reasons_only_during_the_outage():
    """About a third of send-email jobs fail, each always with the same reason; none after."""
    mails = [job("email", n) for n in range(1000)]
    reasons = [failure("email", name, data, outage=True) for name, data in mails]
    failed = [r for r in reasons if r]
    assert 250 < len(failed) < 450 and set(failed) == set(REASONS)
    assert reasons == [failure("email", name, data, outage=True) for name, data in mails]
    assert not any(failure("email", name, data, outage=False) for name, data in mails)


def test_injected_failures_fail_in_every_queue_and_nothing_else_does():
    """`queue inject-failure`'s test-failure jobs fail whatever the queue; other queues' don't."""
    injected = {"shouldFail": True, "message": "This job is designed to fail for DLQ testing"}
    for q in SPECS:
        assert failure(q, "test-failure", injected, outage=False) == injected["message"]
        if q != "email":
            assert failure(q, *job(q, 7), outage=True) is None


def test_job_options_are_clientforges_with_the_backoff_scaled():
    """email: 5 attempts, exponential 2 s (scaled), failed jobs kept."""
    assert options(SPECS["email"], 0.05) == {
        "attempts": 5,
        "backoff": {"type": "exponential", "delay": 100},
        "removeOnComplete": {"count": 100, "age": 3600},
        "removeOnFail": False,
    }


def test_only_the_demos_keys_are_its_own():
    """bull: keys of the configured queues and forge-demo: keys; nothing else."""
    places = Places("redis://x/15", "postgresql://x/forge_demo_crm", "", Path("."), ("email",))
    assert places.is_ours("bull:email:failed") and places.is_ours("bull:email:42:lock")
    assert places.is_ours("forge-demo:owner")
    assert not places.is_ours("bull:billing:failed") and not places.is_ours("session:1")
    assert not places.is_ours("bull:email") and not places.is_ours("email:bull:x")


def test_the_notification_is_one_forges_webhook_takes():
    """Firing and resolved payloads validate as Alertmanager v4, with the rule's labels."""
    started = alert.now_stamp()
    for resolved in (False, True):
        payload = Notification.model_validate(alert.notification(6, started, resolved=resolved))
        (one,) = payload.alerts
        assert one["status"] == ("resolved" if resolved else "firing")
        assert one["labels"]["alertname"] == "QueueDLQJobsPresent"
        assert one["annotations"]["summary"] == "6 jobs in the DLQ of email"
    assert authorized("Bearer tok-123456", "tok-123456")
    assert alert.read_state(alert.write_state("firing", started, 6).encode()) == (
        "firing",
        started,
        6,
    )
    assert alert.read_state(None) == ("", "", 0)


def test_the_demo_rules_are_deploys_with_the_dlq_rule_at_the_threshold():
    """Only QueueDLQJobsPresent changes (threshold, no `for`); every other rule is deploy's."""
    import yaml

    from bot.demo.monitoring import DEPLOY, rules

    theirs = yaml.safe_load((DEPLOY / "prometheus" / "queue-alerts.yml").read_text())
    ours = yaml.safe_load(rules(7))
    pairs = zip(theirs["groups"], ours["groups"], strict=True)
    for group, demo_group in pairs:
        assert demo_group["interval"] == "2s"
        for rule, demo_rule in zip(group["rules"], demo_group["rules"], strict=True):
            if rule["alert"] == "QueueDLQJobsPresent":
                assert demo_rule["expr"] == 'crm_queue_jobs_dlq_total{queue="email"} >= 7'
                assert demo_rule["for"] == "0s" and rule["for"] == "5m"
            else:
                assert demo_rule == rule
