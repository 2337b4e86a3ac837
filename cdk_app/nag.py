"""Policy checks on every synth: cdk-nag's AwsSolutions pack, and acknowledgements next to what they excuse.

``add_checks(app)`` registers the pack as a CDK validation plugin, so ``cdk synth``, ``cdk deploy`` and the
infrastructure tests' ``Template.from_stack`` all run it, and any finding that is not acknowledged fails the
synth. Findings are fixed where they can be; the rest are acknowledged with these helpers, each by the
construct that creates the resource, with the reason it is acceptable there.

cdk-nag 3 names a finding ``AwsSolutions::<rule>`` or, for rules with several findings per resource (IAM4,
IAM5), ``AwsSolutions::<rule>[<finding>]``; a finding about a resource ARN spells it the way cdk-nag renders
template values (``<LogicalId>`` for a Ref, ``<LogicalId.Attribute>`` for a GetAtt), which
``acknowledge_wildcard_resource`` computes from the ARN's token, so no logical id is written out by hand.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import Acknowledgment, App, Stack, Validations
from cdk_nag import AwsSolutionsChecks
from constructs import IConstruct

PACK = "AwsSolutions"


def add_checks(app: App) -> None:
    """Run the AwsSolutions pack over the whole app at synth; unacknowledged findings fail it."""
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))


def acknowledge(construct: IConstruct, rule: str, reason: str) -> None:
    """Accept finding ``rule`` (e.g. ``"APIG4"``, or ``"IAM5[Resource::*]"``) on ``construct`` and below."""
    if not reason.strip():
        raise ValueError(f"acknowledging {rule} needs a reason")
    Validations.of(construct).acknowledge(Acknowledgment(id=f"{PACK}::{PACK}-{rule}", reason=reason))


def acknowledge_wildcard_resource(construct: IConstruct, resource: str, reason: str) -> None:
    """Accept IAM5 (wildcard permission) for one resource ARN (a string with tokens, or ``"*"``)."""
    acknowledge(construct, f"IAM5[Resource::{rendered(construct, resource)}]", reason)


def acknowledge_managed_policy(construct: IConstruct, policy_name: str, reason: str) -> None:
    """Accept IAM4 (an AWS managed policy) for ``policy_name``, e.g. ``service-role/AWSLambdaRole``."""
    acknowledge(construct, f"IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/{policy_name}]", reason)


def rendered(scope: IConstruct, value: str) -> str:
    """``value`` as cdk-nag spells it in a finding id: ``arn:<AWS::Partition>:...:<Api123>/dev/*``."""
    return _render(Stack.of(scope).resolve(value))


def _render(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and len(value) == 1:
        ((function, argument),) = value.items()
        if function == "Ref":
            return f"<{argument}>"
        if function == "Fn::GetAtt":
            logical_id, attribute = argument if isinstance(argument, list) else argument.split(".", 1)
            return f"<{logical_id}.{attribute}>"
        if function == "Fn::Join":
            separator, parts = argument
            return separator.join(_render(part) for part in parts)
    raise ValueError(f"cannot spell {value!r} as a cdk-nag finding")
