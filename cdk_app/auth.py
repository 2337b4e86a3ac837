"""Speaker authentication: a Cognito user pool and app client (created, or imported from context), and
the ``$connect`` Lambda REQUEST authorizer that verifies their JWTs."""

from __future__ import annotations

from aws_cdk import aws_apigatewayv2_authorizers as authorizers
from aws_cdk import aws_cognito as cognito
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from cdk_app.config import EnvironmentConfig
from lambda_src import auth

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
        else:
            pool = cognito.UserPool(
                self,
                "UserPool",
                self_sign_up_enabled=False,
                sign_in_aliases=cognito.SignInAliases(email=True, username=True),
                password_policy=cognito.PasswordPolicy(min_length=12),
                removal_policy=config.removal_policy,
            )
            client = pool.add_client(
                "SpeakerClient",
                auth_flows=cognito.AuthFlow(user_srp=True),
                generate_secret=False,
                disable_o_auth=True,
            )
            self.user_pool = pool
            client_id = client.user_pool_client_id
        issuer = f"https://{self.user_pool.user_pool_provider_url}"
        authorizer_function.add_environment(auth.ENV_ISSUER, issuer)
        authorizer_function.add_environment(auth.ENV_JWKS_URL, f"{issuer}/.well-known/jwks.json")
        authorizer_function.add_environment(auth.ENV_CLIENT_ID, client_id)
        self.authorizer = authorizers.WebSocketLambdaAuthorizer(
            "SpeakerAuthorizer", authorizer_function, identity_source=[IDENTITY_SOURCE]
        )
