"""Publish the agent's metrics to CloudWatch through the `aws.greengrass.Cloudwatch` component.

Runs as its own Greengrass component (greengrass/metrics-publisher/): every `--interval` seconds it
reads the agent's /metrics (a Unix socket or loopback), turns each counter's increase since the
last read into one message per metric and model component, and publishes it over Greengrass IPC on
the local topic `cloudwatch/metric/put`, the message format of aws.greengrass.Cloudwatch:

    {"request": {"namespace": ..., "metricData": {"metricName": "ProcessedImageCount",
      "dimensions": [{"name": "ProjectName", "value": ...}, {"name": "ModelVersion", "value": ...}],
      "value": 12, "unit": "Count", "timestamp": 1767225600.0}}}

`Time` is the mean milliseconds of the interval's successful calls (sum and count of the histogram),
sent only when there were calls. The first read is a baseline (nothing is sent), so restarting the
publisher never sends a total twice; a counter that went down means the agent restarted, and its
new value is the increase. Imports only the standard library, prometheus_client and awsiotsdk.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from prometheus_client.parser import text_string_to_metric_families

from edge_agent.observability.names import CLOUDWATCH, DEFAULT_NAMESPACE, DIMENSIONS
from edge_agent.observability.scrape import fetch

log = logging.getLogger("edge_agent.cloudwatch")
TOPIC = "cloudwatch/metric/put"
if TYPE_CHECKING:  # (metric name, model component, project, version) -> value
    Reading = dict[tuple[str, str, str, str], float]


def read(text: str) -> Reading:
    """The samples the publisher needs from a /metrics body."""
    wanted = {m.prometheus for m in CLOUDWATCH if m.cloudwatch != "Time"}
    wanted |= {"lookoutvision_time_seconds_sum", "lookoutvision_time_seconds_count"}
    out: Reading = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in wanted:
                labels = sample.labels
                key = (sample.name, labels["model_component"], labels["project"], labels["model_version"])
                out[key] = out.get(key, 0.0) + float(sample.value)
    return out


def increases(before: Reading, now: Reading) -> Reading:
    out = {}
    for key, value in now.items():
        previous = before.get(key, 0.0)
        out[key] = value - previous if value >= previous else value  # lower: the agent restarted
    return out


def messages(delta: Reading, namespace: str, timestamp: float) -> list[dict[str, Any]]:
    """One aws.greengrass.Cloudwatch request per (metric, model component)."""
    models = sorted({key[1:] for key in delta})
    out = []
    for component, project, version in models:
        dimensions = [
            {"name": DIMENSIONS[0], "value": project},
            {"name": DIMENSIONS[1], "value": version},
        ]

        for metric in CLOUDWATCH:
            if metric.cloudwatch == "Time":
                count = delta.get(("lookoutvision_time_seconds_count", component, project, version), 0.0)
                if count <= 0:
                    continue
                total = delta.get(("lookoutvision_time_seconds_sum", component, project, version), 0.0)
                value = 1000.0 * total / count
            else:
                value = delta.get((metric.prometheus, component, project, version), 0.0)
            out.append(
                {
                    "request": {
                        "namespace": namespace,
                        "metricData": {
                            "metricName": metric.cloudwatch,
                            "dimensions": dimensions,
                            "value": value,
                            "unit": metric.unit,
                            "timestamp": timestamp,
                        },
                    }
                }
            )
    return out


class Publisher:
    """scrape() -> /metrics text; publish(topic, message dict) sends one message."""

    def __init__(
        self,
        scrape: Callable[[], str],
        publish: Callable[[str, dict[str, Any]], None],
        namespace: str = DEFAULT_NAMESPACE,
        topic: str = TOPIC,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if namespace.startswith("AWS/"):
            raise ValueError(
                f"namespace {namespace!r}: CloudWatch reserves AWS/ for AWS services and refuses it from "
                f"PutMetricData; use another, e.g. {DEFAULT_NAMESPACE!r} (the metric names stay the same)"
            )
        self._scrape = scrape
        self._publish = publish
        self.namespace = namespace
        self.topic = topic
        self._clock = clock
        self._last: Reading | None = None

    def tick(self) -> int:
        """Read once; publish the increases since the last read. Returns the messages sent."""
        now = read(self._scrape())
        before, self._last = self._last, now
        if before is None:
            return 0
        sent = 0
        for message in messages(increases(before, now), self.namespace, self._clock()):
            self._publish(self.topic, message)
            sent += 1
        return sent


def ipc_publisher(client: Any = None) -> Callable[[str, dict[str, Any]], None]:
    """publish(topic, message) over Greengrass IPC: `client` is a GreengrassCoreIPCClientV2, by
    default one on the nucleus's socket (found from the component's environment)."""
    from awsiot.greengrasscoreipc.model import JsonMessage, PublishMessage

    if client is None:
        from awsiot.greengrasscoreipc.clientv2 import GreengrassCoreIPCClientV2

        client = GreengrassCoreIPCClientV2()

    def publish(topic: str, message: dict[str, Any]) -> None:
        client.publish_to_topic(
            topic=topic, publish_message=PublishMessage(json_message=JsonMessage(message=message))
        )

    return publish


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--metrics-address", required=True, help="the agent's --metrics-address")
    parser.add_argument("--interval", type=float, default=60.0, help="seconds between publishes")
    parser.add_argument("--namespace", default=DEFAULT_NAMESPACE)
    parser.add_argument("--topic", default=TOPIC, help="aws.greengrass.Cloudwatch's InputTopic")
    parser.add_argument("--once", action="store_true", help="read, wait one interval, publish, exit")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s")
    if not args.interval > 0:
        parser.error("--interval must be more than 0 seconds")
    try:
        publisher = Publisher(
            lambda: fetch(args.metrics_address), ipc_publisher(), args.namespace, args.topic
        )
    except ValueError as exc:
        parser.error(str(exc))
    ticks = 0
    while True:
        try:
            sent = publisher.tick()
            log.info("event=published messages=%d namespace=%s", sent, publisher.namespace)
        except OSError as exc:  # agent restarting, endpoint not up yet: try again next interval
            log.warning("event=scrape_failed address=%s reason=%r", args.metrics_address, str(exc))
        except Exception as exc:  # IPC refused (accessControl), nucleus restarting
            log.warning("event=publish_failed reason=%s: %s", type(exc).__name__, json.dumps(str(exc)))
        ticks += 1
        if args.once and ticks == 2:
            return 0
        time.sleep(args.interval)


if __name__ == "__main__":
    sys.exit(main())
