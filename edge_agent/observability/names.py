"""Lookout for Vision's CloudWatch metric names and the Prometheus series they come from.

Dependency-free on purpose: the CloudWatch publisher component imports it without the agent's
runtime (no numpy, grpc or ONNX Runtime in its environment).
"""

from __future__ import annotations

from typing import NamedTuple

# What AWS used; CloudWatch reserves `AWS/` for AWS services, so PutMetricData (and with it
# aws.greengrass.Cloudwatch) refuses it from a device: the publisher defaults to DEFAULT_NAMESPACE.
LFV_NAMESPACE = "AWS/LookoutVision"
DEFAULT_NAMESPACE = "EdgeAgent/LookoutVision"
DIMENSIONS = ("ProjectName", "ModelVersion")  # from the labels `project` and `model_version`


class CloudWatchMetric(NamedTuple):
    cloudwatch: str  # metric name, as in Lookout for Vision
    prometheus: str  # series on /metrics (a counter's `_total` sample, or the histogram's base name)
    unit: str  # CloudWatch unit


CLOUDWATCH: tuple[CloudWatchMetric, ...] = (
    CloudWatchMetric("DetectedAnomalyCount", "lookoutvision_detected_anomaly_count_total", "Count"),
    CloudWatchMetric("ProcessedImageCount", "lookoutvision_processed_image_count_total", "Count"),
    CloudWatchMetric("InvalidImageCount", "lookoutvision_invalid_image_count_total", "Count"),
    CloudWatchMetric("SuccessfulRequestCount", "lookoutvision_successful_request_count_total", "Count"),
    CloudWatchMetric("ErrorCount", "lookoutvision_error_count_total", "Count"),
    CloudWatchMetric("ThrottledCount", "lookoutvision_throttled_count_total", "Count"),
    CloudWatchMetric("Time", "lookoutvision_time_seconds", "Milliseconds"),
)
