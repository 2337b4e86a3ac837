"""API Gateway access logs as one JSON object per request, for the WebSocket and the HTTP API alike."""

from __future__ import annotations

import json
from collections.abc import Mapping

import jsii
from aws_cdk import aws_apigateway as apigw_v1
from aws_cdk import aws_apigatewayv2 as apigw
from aws_cdk import aws_logs as logs


@jsii.implements(apigw.IAccessLogSettings)
class JsonAccessLogs:
    """A stage's access logs into ``log_group``: ``fields`` (name -> ``$context`` variable) as compact JSON."""

    def __init__(self, fields: Mapping[str, str], log_group: logs.ILogGroup) -> None:
        self._fields = dict(fields)
        self._destination = apigw.LogGroupLogDestination(log_group)

    @property
    def destination(self) -> apigw.IAccessLogDestination:
        return self._destination

    @property
    def format(self) -> apigw_v1.AccessLogFormat:
        return apigw_v1.AccessLogFormat.custom(json.dumps(self._fields, separators=(",", ":")))
