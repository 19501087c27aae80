"""Real Alertmanager (Debian's `prometheus-alertmanager`) and Prometheus, set up from `deploy/`."""

from __future__ import annotations

import re
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import httpx
import yaml

from tests.support.prometheus_fixture import Prometheus, ServerProcess, free_port

ALERTMANAGER = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
SKIP_REASON = (
    "Alertmanager or Prometheus is not installed "
    "(apt-get install prometheus prometheus-alertmanager)"
)


def unavailable() -> bool:
    """True when either binary is missing."""
    return ALERTMANAGER is None or shutil.which("prometheus") is None


def alertmanager_config(forge_url: str, token_file: Path) -> str:
    """deploy/alertmanager/alertmanager.yml pointed at this forge, with test-sized waits."""
    config = yaml.safe_load((DEPLOY / "alertmanager" / "alertmanager.yml").read_text())
    config["route"].update(group_wait="0s", group_interval="1s", repeat_interval="1h")
    hook = config["receivers"][0]["webhook_configs"][0]
    hook["url"] = forge_url + "/alerts/alertmanager"
    hook["http_config"]["authorization"]["credentials_file"] = str(token_file)
    return yaml.safe_dump(config)


def prometheus_files(forge_target: str, alertmanager_target: str) -> tuple[str, dict[str, str]]:
    """deploy/prometheus's config aimed at this forge and Alertmanager; `for`, intervals 1 s."""
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    config["global"] = {
        "scrape_interval": "500ms",
        "scrape_timeout": "400ms",
        "evaluation_interval": "1s",
    }
    config["scrape_configs"][0]["static_configs"][0]["targets"] = [forge_target]
    config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] = [alertmanager_target]
    rules = (DEPLOY / "prometheus" / "queue-alerts.yml").read_text()
    rules = re.sub(r"(?m)^(\s+)for: \S+$", r"\1for: 0s", rules)
    # One slow scrape on a busy machine must not page "metrics down" in the middle of a test.
    rules = re.sub(r"(alert: QueueMetricsDown\n(?:.*\n)*?\s+)for: 0s", r"\1for: 30s", rules)
    rules = re.sub(r"(?m)^(\s+)interval: \S+$", r"\1interval: 1s", rules)
    return yaml.safe_dump(config), {"queue-alerts.yml": rules}


class Alertmanager(ServerProcess):
    """Alertmanager on a free port, clustering off, with forge as its webhook receiver."""

    name = "alertmanager"

    def __init__(self, forge_url: str, token: str) -> None:
        assert ALERTMANAGER, SKIP_REASON
        self.dir = Path(tempfile.mkdtemp(prefix="forge-am-"))
        token_file = self.dir / "forge-token"
        token_file.write_text(token)
        (self.dir / "alertmanager.yml").write_text(alertmanager_config(forge_url, token_file))
        self.address = f"127.0.0.1:{free_port()}"
        self.url = "http://" + self.address
        self._start(
            [
                ALERTMANAGER,
                f"--config.file={self.dir / 'alertmanager.yml'}",
                f"--storage.path={self.dir / 'data'}",
                f"--web.listen-address={self.address}",
                "--cluster.listen-address=",
                "--log.level=warn",
            ]
        )

    def push(
        self,
        labels: dict[str, str],
        annotations: dict[str, str],
        starts: datetime,
        ends: datetime | None = None,
    ) -> None:
        """Post one alert to Alertmanager's API, as Prometheus would."""
        body = {"labels": labels, "annotations": annotations, "startsAt": starts.isoformat()}
        if ends is not None:
            body["endsAt"] = ends.isoformat()
        httpx.post(self.url + "/api/v2/alerts", json=[body], timeout=5).raise_for_status()


def rules_prometheus(forge_target: str, alertmanager_target: str) -> Prometheus:
    """A Prometheus scraping forge with deploy/'s queue rules, sending to that Alertmanager."""
    config, files = prometheus_files(forge_target, alertmanager_target)
    return Prometheus(None, config=config, files=files, flags=("--rules.alert.resend-delay=1s",))


def now() -> datetime:
    """The current UTC time."""
    return datetime.now(UTC)
