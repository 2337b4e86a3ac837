"""The one structured logger (Powertools: JSON lines that carry the correlation ids the handlers append)."""

from __future__ import annotations

from aws_lambda_powertools import Logger

SERVICE_NAME = "session-service"

logger = Logger(service=SERVICE_NAME)
