"""The demo's Prometheus and Alertmanager, when both are installed: deploy/'s rules, real delivery.

Prometheus scrapes forge's /metrics (the queue gauges, read from the demo's Redis), evaluates
deploy/prometheus/queue-alerts.yml, and Alertmanager posts to forge's webhook with the token.
Only QueueDLQJobsPresent is changed for the demo: it fires at the demo's threshold, at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import signal
import socket
from pathlib import Path

import aiohttp
import yaml

from bot.demo import alert
from bot.log import get_logger

log = get_logger(__name__)
DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
STOP_SECONDS = 10
GROUP_BY = ("alertname", "queue")  # deploy/alertmanager/alertmanager.yml's route


def binaries() -> tuple[str, str] | None:
    """Prometheus and Alertmanager, and deploy/ beside the code; None when any is missing."""
    prometheus = shutil.which("prometheus")
    alertmanager = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    if prometheus and alertmanager and (DEPLOY / "prometheus" / "queue-alerts.yml").exists():
        return prometheus, alertmanager
    return None


def rules(threshold: int) -> str:
    """deploy's queue rules, groups evaluated every 2 s, the DLQ rule at the demo's threshold."""
    text = (DEPLOY / "prometheus" / "queue-alerts.yml").read_text(encoding="utf-8")
    text = re.sub(r"(?m)^(\s+)interval: \S+$", r"\g<1>interval: 2s", text)
    return re.sub(
        r"(?m)^(\s+)expr: crm_queue_jobs_dlq_total > 0\n(\s+)for: \S+$",
        rf'\g<1>expr: crm_queue_jobs_dlq_total{{queue="email"}} >= {threshold}\n\g<2>for: 0s',
        text,
    )


def prometheus_config(forge: str, alertmanager: str) -> str:
    """deploy's prometheus.yml aimed at this forge and Alertmanager, scraping every 2 s."""
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    config["global"] = {"scrape_interval": "2s", "evaluation_interval": "2s"}
    config["scrape_configs"][0]["static_configs"][0]["targets"] = [forge]
    config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] = [alertmanager]
    return yaml.safe_dump(config)


def alertmanager_config(webhook: str, token_file: Path) -> str:
    """deploy's alertmanager.yml posting to this forge, without the production waits."""
    config = yaml.safe_load((DEPLOY / "alertmanager" / "alertmanager.yml").read_text())
    config["route"].update(group_wait="1s", group_interval="2s", repeat_interval="4h")
    hook = config["receivers"][0]["webhook_configs"][0]
    hook["url"] = webhook
    hook["http_config"]["authorization"]["credentials_file"] = str(token_file)
    return yaml.safe_dump(config)


class Monitoring:
    """The two servers, as children of the playground that die with it."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.processes: list[asyncio.subprocess.Process] = []
        self.alertmanager_url = ""

    async def start(self, webhook: str, token: str, threshold: int, forge: str) -> bool:
        """Start both; False (and nothing left running) when they cannot be."""
        found = binaries()
        if found is None:
            return False
        prometheus, alertmanager = found
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder.mkdir(parents=True)
        token_file = self.folder / "forge-token"
        token_file.write_text(token, encoding="utf-8")
        token_file.chmod(0o600)
        am_address, prom_address = f"127.0.0.1:{_free_port()}", f"127.0.0.1:{_free_port()}"
        (self.folder / "alertmanager.yml").write_text(alertmanager_config(webhook, token_file))
        (self.folder / "prometheus.yml").write_text(prometheus_config(forge, am_address))
        (self.folder / "queue-alerts.yml").write_text(rules(threshold))
        try:
            await self._spawn(
                alertmanager,
                f"--config.file={self.folder / 'alertmanager.yml'}",
                f"--storage.path={self.folder / 'am-data'}",
                f"--web.listen-address={am_address}",
                "--cluster.listen-address=",
                "--log.level=warn",
            )
            await self._spawn(
                prometheus,
                f"--config.file={self.folder / 'prometheus.yml'}",
                f"--storage.tsdb.path={self.folder / 'prom-data'}",
                f"--web.listen-address={prom_address}",
                "--rules.alert.resend-delay=2s",
                "--log.level=error",
            )
        except OSError as exc:
            log.warning("demo_monitoring_not_started", error=str(exc))
            await self.stop()
            return False
        self.alertmanager_url = f"http://{am_address}"
        log.info("demo_monitoring", prometheus=prom_address, alertmanager=am_address)
        return True

    async def resolve_held(self, webhook: str, token: str) -> None:
        """What Alertmanager holds, sent to forge as resolved: before a reset, which starts a
        fresh Prometheus and Alertmanager, so no card stays firing for an alert nobody tracks."""
        try:
            async with (
                aiohttp.ClientSession(timeout=alert.TIMEOUT) as session,
                session.get(self.alertmanager_url + "/api/v2/alerts?active=true") as reply,
            ):
                held = await reply.json() if reply.status == 200 else []
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return
        for payload in alert.resolved(held, GROUP_BY):
            await alert.send(webhook, token, payload)

    async def _spawn(self, *argv: str) -> None:
        self.processes.append(
            await asyncio.create_subprocess_exec(
                *argv,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
                preexec_fn=_die_with_parent,
            )
        )

    async def stop(self) -> None:
        """SIGTERM both, SIGKILL after STOP_SECONDS."""
        processes, self.processes = self.processes, []
        self.alertmanager_url = ""
        for process in processes:
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
        for process in processes:
            try:
                await asyncio.wait_for(process.wait(), STOP_SECONDS)
            except TimeoutError:
                process.kill()
                await process.wait()


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM it when the playground dies, even by SIGKILL (Linux)."""
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
