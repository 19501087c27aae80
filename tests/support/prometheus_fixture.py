"""A real Prometheus (Debian's) scraping a small exporter of ClientForge-shaped `crm_*` metrics.

The exporter's counters grow at fixed rates with wall time, so `rate()` and `histogram_quantile()`
over them give known answers after two scrapes.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

PROMETHEUS = shutil.which("prometheus")
SKIP_REASON = (
    "the prometheus binary is not installed (apt-get install -y --no-install-recommends prometheus)"
)
BUCKETS = [0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10]  # metrics.service.ts's HTTP histogram


@dataclass
class Profile:
    """What the fake ClientForge reports: rates per second, gauges, where request latencies fall."""

    cpu: float = 0.25
    rss: float = 300 * 1048576
    lag: float = 0.004
    rps: float = 50.0
    error_share: float = 0.0
    latency: dict[float, float] = field(default_factory=lambda: {0.05: 0.90, 0.1: 0.08, 0.5: 0.02})

    def cumulative(self, count: float) -> list[tuple[str, float]]:
        """Cumulative bucket counts for `count` requests, +Inf last."""
        running, out = 0.0, []
        for le in BUCKETS:
            running += self.latency.get(le, 0.0)
            out.append((str(le), count * min(running, 1.0)))
        return [*out, ("+Inf", count)]


class CrmCollector:
    """ClientForge's `crm_` default and HTTP metrics, computed from a Profile on a simulated clock.

    The first scrape is stamped HISTORY seconds in the past and each scrape moves STEP seconds on
    until the clock catches up with real time, so Prometheus holds five and a half minutes of
    history after two seconds of scraping and `rate()` over forge's default five-minute window sees
    a full window.
    """

    HISTORY, STEP = 330.0, 15.0

    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        self.origin = time.time() - self.HISTORY
        self.clock: float | None = None

    @property
    def caught_up(self) -> bool:
        """True once scrapes carry the real time."""
        return self.clock is not None and self.clock >= time.time() - 1

    def describe(self) -> list[object]:
        """Nothing up front: registering must not advance the clock."""
        return []

    def collect(self) -> Iterator[object]:
        """One scrape's metric families, stamped with the simulated time."""
        now = time.time()
        self.clock = self.origin if self.clock is None else min(now, self.clock + self.STEP)
        p, ts, elapsed = self.profile, self.clock, self.clock - self.origin
        cpu = CounterMetricFamily(
            "crm_process_cpu_seconds", "Total user and system CPU time.", labels=[]
        )
        cpu.add_metric([], p.cpu * elapsed, timestamp=ts)
        yield cpu
        for name, value in (
            ("crm_process_resident_memory_bytes", p.rss),
            ("crm_nodejs_eventloop_lag_p99_seconds", p.lag),
            ("crm_nodejs_eventloop_lag_seconds", p.lag),
        ):
            gauge = GaugeMetricFamily(name, name, labels=[])
            gauge.add_metric([], value, timestamp=ts)
            yield gauge
        http = HistogramMetricFamily(
            "crm_http_request_duration_seconds",
            "HTTP request duration.",
            labels=["method", "route", "status"],
        )
        total = p.rps * elapsed
        for status, share in (("200", 1 - p.error_share), ("500", p.error_share)):
            if share > 0:
                count = total * share
                http.add_metric(
                    ["GET", "/api/v1/contacts", status],
                    p.cumulative(count),
                    sum_value=count * 0.05,
                    timestamp=ts,
                )
        yield http


def free_port() -> int:
    """A local TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Exporter:
    """The `/metrics` endpoint of a fake ClientForge backend, on a free port."""

    def __init__(self, profile: Profile) -> None:
        registry = CollectorRegistry()
        self.collector = CrmCollector(profile)
        registry.register(self.collector)  # type: ignore[arg-type]
        self.server, self.thread = start_http_server(0, addr="127.0.0.1", registry=registry)
        self.target = f"127.0.0.1:{self.server.server_port}"

    def stop(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()


CONFIG = """global:
  scrape_interval: 100ms
  scrape_timeout: 90ms
  evaluation_interval: 1s
scrape_configs:
"""
JOB = """  - job_name: clientforge-backend
    static_configs:
      - targets: ['{target}']
"""


class ServerProcess:
    """A server binary on a free port with a temp dir: started, awaited, stopped and cleaned up."""

    name = "server"

    def _start(self, argv: list[str]) -> None:
        self.log = (self.dir / "stderr.log").open("wb")
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=self.log)

    def wait_ready(self, timeout: float = 20.0) -> None:
        """Until /-/ready answers 200."""
        self._wait(
            lambda: httpx.get(self.url + "/-/ready", timeout=1).status_code == 200, timeout, "ready"
        )

    def _wait(self, check: object, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited: {(self.dir / 'stderr.log').read_text()[-500:]}"
                )
            try:
                if check():  # type: ignore[operator]
                    return
            except (httpx.HTTPError, KeyError, ValueError):
                pass
            time.sleep(0.1)
        raise TimeoutError(f"{self.name}: no {what} after {timeout:g} s")

    def stop(self) -> None:
        """Terminate the process this object started, and remove its files."""
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class Prometheus(ServerProcess):
    """A Prometheus server on a free port with a temporary config and data directory."""

    name = "prometheus"

    def __init__(
        self,
        target: str | None,
        config: str | None = None,
        files: dict[str, str] | None = None,
        flags: tuple[str, ...] = (),
    ) -> None:
        assert PROMETHEUS, SKIP_REASON
        self.dir = Path(tempfile.mkdtemp(prefix="forge-prom-"))
        for name, text in (files or {}).items():
            (self.dir / name).write_text(text)
        (self.dir / "prometheus.yml").write_text(
            config or CONFIG + (JOB.format(target=target) if target else "  []\n")
        )
        self.url = f"http://127.0.0.1:{free_port()}"
        address = self.url.removeprefix("http://")
        self._start(
            [
                PROMETHEUS,
                f"--config.file={self.dir / 'prometheus.yml'}",
                f"--storage.tsdb.path={self.dir / 'data'}",
                f"--web.listen-address={address}",
                "--log.level=error",
                *flags,
            ]
        )

    def wait_for(self, expr: str, timeout: float = 20.0) -> None:
        """Until an instant query returns a sample."""

        def has_sample() -> bool:
            body = httpx.get(self.url + "/api/v1/query", params={"query": expr}, timeout=1).json()
            return bool(body["data"]["result"])

        self._wait(has_sample, timeout, f"a sample of {expr}")


class Stack:
    """Prometheus scraping an exporter with this profile, or scraping nothing."""

    def __init__(self, profile: Profile | None) -> None:
        self.exporter = Exporter(profile) if profile else None
        self.prometheus = Prometheus(self.exporter.target if self.exporter else None)
        self.url = self.prometheus.url

    def wait(self) -> None:
        """Until Prometheus is ready and holds the exporter's history up to now."""
        self.prometheus.wait_ready()
        if self.exporter is None:
            return
        self.prometheus.wait_for("crm_process_resident_memory_bytes")
        deadline = time.monotonic() + 20
        while not self.exporter.collector.caught_up and time.monotonic() < deadline:
            time.sleep(0.05)
        self.prometheus.wait_for("timestamp(crm_process_resident_memory_bytes) > time() - 1")

    def stop(self) -> None:
        """Stop Prometheus, then the exporter."""
        self.prometheus.stop()
        if self.exporter:
            self.exporter.stop()


def stacks(*profiles: Profile | None) -> Iterator[list[str]]:
    """Start a stack per profile at once (~5 s to Prometheus's first scrape); yield their URLs."""
    started: list[Stack] = []
    try:
        started.extend(Stack(p) for p in profiles)
        for each in started:
            each.wait()
        yield [each.url for each in started]
    finally:
        for each in started:
            each.stop()
