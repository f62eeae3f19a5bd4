"""Powertools Logger and Metrics, one of each per container.

Logs are JSON with a correlation id (connection id, plus the frame's request id when there is one).
Nothing here ever logs an event as a whole: a ``$connect`` event's query string holds the ticket.
"""

from __future__ import annotations

import warnings

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

logger = Logger(service="collab")
metrics = Metrics(namespace="Collab", service="collab")
# A heartbeat or a refused frame publishes no metric, and that is expected, not worth a warning.
warnings.filterwarnings("ignore", message="No application metrics to publish")

__all__ = ["MetricUnit", "logger", "metrics"]
