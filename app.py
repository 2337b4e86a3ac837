#!/usr/bin/env python3
"""CDK entry point: ``npx cdk synth -c env=prod`` (or ``python app.py``)."""

from __future__ import annotations

import aws_cdk as cdk

from cdk_app import config as environment_config
from cdk_app import nag
from cdk_app.stack import SessionServiceStack


def build_app(app: cdk.App | None = None) -> cdk.App:
    """The app with its one stack; cdk-nag's AwsSolutions checks run at every synth and fail it on any
    finding that is not acknowledged (see ``cdk_app.nag``)."""
    app = app or cdk.App()
    nag.add_checks(app)
    config = environment_config.load(app.node)
    SessionServiceStack(
        app,
        config.stack_name,
        config=config,
        description=f"Live speech translation session service ({config.name})",
    )
    return app


if __name__ == "__main__":
    build_app().synth()
