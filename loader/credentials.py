"""Where the credentials, the region, the endpoint and the way to it (a CA bundle, a
proxy) come from: botocore's chain when it must be asked (profiles, SSO, roles,
endpoint rules), the environment when all is explicit, and what a main process hands
its writer processes."""

from __future__ import annotations

import dataclasses
import os
import time
import urllib.request
from typing import Any
from urllib.parse import urlsplit

from loader.errors import ConfigError


@dataclasses.dataclass(frozen=True, slots=True)
class StaticCredentials:
    """Credentials that do not expire (keys from the environment or a profile)."""

    access_key: str
    secret_key: str
    token: str | None

    def get_frozen_credentials(self) -> StaticCredentials:
        return self


class ShippedCredentials:
    """Expiring credentials handed to a writer process by the main process: used as they
    are until 15 minutes before they expire, then resolved afresh by botocore here (an
    import and a credential chain only a long job pays, and only in a thread)."""

    def __init__(
        self, frozen: StaticCredentials, expiry: float, profile: str | None, region: str
    ) -> None:
        self._frozen = frozen
        self.expiry = expiry
        self._profile = profile
        self._region = region
        self._own: Any = None

    def refresh_needed(self) -> bool:
        return self._own is None and time.time() >= self.expiry - 900

    def get_frozen_credentials(self) -> Any:
        if self._own is None and time.time() >= self.expiry - 900:
            import botocore.session

            session = botocore.session.Session(profile=self._profile)
            session.set_config_variable("region", self._region)
            self._own = session.get_credentials()
            if self._own is None:
                raise ConfigError("The AWS credentials expired and none are found anew.")
        if self._own is not None:
            return self._own.get_frozen_credentials()
        return self._frozen


@dataclasses.dataclass(frozen=True, slots=True)
class Resolved:
    """What botocore resolved for a client, to hand to a writer process as it is."""

    endpoint: str
    region: str
    credentials: StaticCredentials
    expiry: float | None  # of the credentials; None: they do not expire
    profile: str | None
    ca_bundle: str | None

    def credentials_object(self) -> Any:
        if self.expiry is None:
            return self.credentials
        return ShippedCredentials(self.credentials, self.expiry, self.profile, self.region)


def resolve(endpoint_url: str | None, region: str | None, profile: str | None) -> Any:
    """(endpoint, region, credentials, CA bundle) as boto3 would find them (profiles,
    env, endpoint variables and rules; `AWS_CA_BUNDLE` or the profile's `ca_bundle`).
    Synchronous: botocore only reads files and the environment here (and, for instance
    roles, the metadata service).

    Raises:
        ConfigError: unknown profile, no region, or no credentials.
    """
    import botocore.exceptions as bx
    import botocore.session

    try:
        session = botocore.session.Session(profile=profile)
        if region:
            session.set_config_variable("region", region)
        credentials = session.get_credentials()
        # A botocore client only to resolve the endpoint exactly as boto3 does; it sends nothing.
        resolver = session.create_client("dynamodb", region_name=region, endpoint_url=endpoint_url)
        endpoint = resolver.meta.endpoint_url
        resolved_region = resolver.meta.region_name
        resolver.close()
        ca_bundle = session.get_config_variable("ca_bundle")
        if endpoint_url is None and endpoint.startswith(f"https://dynamodb.{resolved_region}."):
            _check_region(session, resolved_region)  # not one a config file or variable set
    except bx.ProfileNotFound:
        raise ConfigError(f"AWS profile {profile!r} is not in your AWS configuration.") from None
    except bx.NoRegionError:
        raise ConfigError("No AWS region: pass --region or set AWS_DEFAULT_REGION.") from None
    except (bx.BotoCoreError, ValueError) as exc:
        raise ConfigError(f"AWS configuration error: {exc}") from None
    if credentials is None:
        raise ConfigError(
            "No AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
            "or pass --profile."
        )
    return endpoint, resolved_region, credentials, ca_bundle


def _check_region(session: Any, region: str) -> None:
    """A region botocore knows DynamoDB in, in any partition (aws, aws-cn, aws-us-gov, …).

    Raises:
        ConfigError: it knows none by that name (a typo, most often).
    """
    known = {
        name
        for partition in session.get_available_partitions()
        for name in session.get_available_regions("dynamodb", partition_name=partition)
    }
    if known and region not in known:
        raise ConfigError(
            f"Unknown AWS region {region!r}: DynamoDB has no endpoint there (e.g. "
            "eu-west-1, us-east-1). A region newer than this botocore: pass --endpoint-url."
        )


def from_environment(
    endpoint_url: str | None, region: str | None, profile: str | None
) -> tuple[str, str, StaticCredentials, str | None] | None:
    """What `resolve` would find, when it is all explicit and botocore need not be asked:
    an --endpoint-url (DynamoDB Local, test endpoints), no --profile, keys in the
    environment (botocore's first credential provider, which wins then), a region from
    --region or AWS_DEFAULT_REGION (which beats any config file), and for an https
    endpoint AWS_CA_BUNDLE (or a config file may name one). None otherwise.

    Saves the botocore import and session, a start-up cost that weighs on short loads
    and on every writer process.
    """
    env = os.environ
    access_key = env.get("AWS_ACCESS_KEY_ID", "")
    secret_key = env.get("AWS_SECRET_ACCESS_KEY", "")
    region = region or env.get("AWS_DEFAULT_REGION", "")
    if not endpoint_url or profile or not access_key or not secret_key or not region:
        return None
    if env.get("AWS_CREDENTIAL_EXPIRATION"):
        return None  # refreshable environment credentials: botocore's business
    ca_bundle = env.get("AWS_CA_BUNDLE") or None
    if ca_bundle is None and endpoint_url.startswith("https:"):
        return None
    token = None
    for name in ("AWS_SECURITY_TOKEN", "AWS_SESSION_TOKEN"):  # botocore's order
        if name in env:
            token = env[name]
            break
    return endpoint_url, region, StaticCredentials(access_key, secret_key, token), ca_bundle


def proxy_for(endpoint: str) -> str | None:
    """The proxy to reach `endpoint` through, as botocore picks it: `HTTPS_PROXY` for an
    https endpoint, `HTTP_PROXY` for an http one (either case), none for a host that
    `NO_PROXY` names."""
    parts = urlsplit(endpoint)
    if urllib.request.proxy_bypass(parts.netloc):
        return None
    return urllib.request.getproxies().get(parts.scheme)
