"""Fixtures of the infrastructure suite: each environment's stack, synthesized once per test session."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

# jsii prints a large "Node 20 is end-of-life" banner in every process unless this is set before it starts.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from tests.infrastructure.template_support import Synthesized, synthesize  # noqa: E402

ROUTE_ENVIRONMENTS = ("dev", "prod")
ALL_ENVIRONMENTS = ("dev", "staging", "prod")


@pytest.fixture(scope="session")
def synthesized_environment() -> Callable[[str], Synthesized]:
    """Synthesizes an environment's stack on first request and hands back the same one afterwards."""
    cache: dict[str, Synthesized | Exception] = {}

    def get(name: str) -> Synthesized:
        if name not in cache:
            try:
                cache[name] = synthesize({"env": name})
            except Exception as error:  # a broken synth fails every test once, not one synth per test
                cache[name] = error
        result = cache[name]
        if isinstance(result, Exception):
            raise result
        return result

    return get


@pytest.fixture(scope="session", params=ROUTE_ENVIRONMENTS)
def deployed(request: pytest.FixtureRequest, synthesized_environment: Callable[[str], Synthesized]) -> Synthesized:
    """The dev and the prod stack."""
    return synthesized_environment(request.param)


@pytest.fixture(scope="session", params=ALL_ENVIRONMENTS)
def deployed_any(request: pytest.FixtureRequest, synthesized_environment: Callable[[str], Synthesized]) -> Synthesized:
    """Every environment's stack (dev, staging, prod), for what differs between them."""
    return synthesized_environment(request.param)
