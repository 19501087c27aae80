"""The queue and DLQ commands; `discover` and `snapshot` are its public reads (the queue gauges)."""

from commands.queues.bullmq import discover, snapshot

__all__ = ["discover", "snapshot"]
