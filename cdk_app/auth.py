"""Speaker authentication: a Cognito user pool and app client (created, or imported from context), and
the ``$connect`` Lambda REQUEST authorizer that verifies their JWTs."""

from __future__ import annotations

from aws_cdk import Aws
from aws_cdk import aws_apigatewayv2_authorizers as authorizers
from aws_cdk import aws_cognito as cognito
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from cdk_app import nag
from cdk_app.config import EnvironmentConfig
from lambda_src.contract import function_settings

# API Gateway refuses a connection with 401, without calling the authorizer, when an identity source is
# missing. Anonymous listeners send no token, so the identity source is a header every WebSocket
# handshake carries; the authorizer itself reads the ``token`` query parameter and tells anonymous
# (no token) from refused (a bad token: 401).
IDENTITY_SOURCE = "route.request.header.Host"


class SpeakerAuth(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: EnvironmentConfig,
        authorizer_function: lambda_.Function,
    ) -> None:
        super().__init__(scope, construct_id)
        if config.user_pool_id:
            self.user_pool = cognito.UserPool.from_user_pool_id(self, "ImportedUserPool", config.user_pool_id)
            client_id = config.user_pool_client_id
            if not client_id:
                raise ValueError("userPoolClientId is required with userPoolId")
            # An imported pool has no ProviderURL attribute; Cognito's issuer is built the same way.
            provider_url = f"cognito-idp.{Aws.REGION}.{Aws.URL_SUFFIX}/{config.user_pool_id}"
        else:
            pool = cognito.UserPool(
                self,
                "UserPool",
                self_sign_up_enabled=False,
                sign_in_aliases=cognito.SignInAliases(email=True, username=True),
                password_policy=cognito.PasswordPolicy(
                    min_length=12,
                    require_lowercase=True,
                    require_uppercase=True,
                    require_digits=True,
                    require_symbols=True,
                ),
                removal_policy=config.removal_policy,
            )
            nag.acknowledge(
                pool,
                "COG2",
                "MFA is not required of speakers yet: requiring it changes every speaker client's sign-in (an "
                "MFA challenge to answer), a product decision of its own; accounts are created by "
                "administrators only (no self sign-up) and passwords are 12+ characters of all four kinds",
            )
            nag.acknowledge(
                pool,
                "COG8",
                "the Plus feature plan (threat protection) is a per-user cost not justified for a pool of "
                "administrator-created speaker accounts with no self sign-up; revisit if speakers sign up",
            )
            client = pool.add_client(
                "SpeakerClient",
                auth_flows=cognito.AuthFlow(user_srp=True),
                generate_secret=False,
                disable_o_auth=True,
            )
            self.user_pool = pool
            client_id = client.user_pool_client_id
            provider_url = pool.user_pool_provider_url
        # What speakers sign in to (the stack's outputs UserPoolId and UserPoolClientId).
        self.user_pool_client_id = client_id
        issuer = f"https://{provider_url}"
        # Who signs speakers' tokens (the HTTP API's JWT authorizer trusts the same issuer and app client).
        self.issuer = issuer
        authorizer_function.add_environment(function_settings.ENV_ISSUER, issuer)
        authorizer_function.add_environment(function_settings.ENV_JWKS_URL, f"{issuer}/.well-known/jwks.json")
        authorizer_function.add_environment(function_settings.ENV_CLIENT_ID, client_id)
        self.authorizer = authorizers.WebSocketLambdaAuthorizer(
            "SpeakerAuthorizer", authorizer_function, identity_source=[IDENTITY_SOURCE]
        )
