"""The 17 Genesys Cloud regions, and the login/API hosts of each.

From the official SDKs' ``PureCloudRegionHosts`` enumeration. A region is given as
an SDK key (``us_east_1`` or ``us-east-1``) or as its domain (``mypurecloud.ie``). Tokens come
from ``https://login.<domain>``, the REST API is ``https://api.<domain>``; the notification
WebSocket is whatever ``connectUri`` the API returns, never built here.
"""

from __future__ import annotations

from dataclasses import dataclass

DOMAINS: dict[str, str] = {
    "us_east_1": "mypurecloud.com",
    "us_east_2": "use2.us-gov-pure.cloud",
    "us_west_2": "usw2.pure.cloud",
    "ca_central_1": "cac1.pure.cloud",
    "sa_east_1": "sae1.pure.cloud",
    "mx_central_1": "mxc1.pure.cloud",
    "eu_west_1": "mypurecloud.ie",
    "eu_west_2": "euw2.pure.cloud",
    "eu_central_1": "mypurecloud.de",
    "eu_central_2": "euc2.pure.cloud",
    "me_central_1": "mec1.pure.cloud",
    "ap_south_1": "aps1.pure.cloud",
    "ap_southeast_1": "apse1.pure.cloud",
    "ap_southeast_2": "mypurecloud.com.au",
    "ap_northeast_1": "mypurecloud.jp",
    "ap_northeast_2": "apne2.pure.cloud",
    "ap_northeast_3": "apne3.pure.cloud",
}


@dataclass(frozen=True, slots=True)
class Hosts:
    login_url: str
    api_url: str


def resolve(region: str) -> Hosts:
    """The hosts of ``region`` (an SDK key or a domain); ``ValueError`` names the choices."""
    value = region.strip().lower()
    key = value.replace("-", "_")
    domain = DOMAINS.get(key)
    if domain is None and value in DOMAINS.values():
        domain = value
    if domain is None:
        raise ValueError(
            f"unknown Genesys region {region!r}: use an SDK key such as us_east_1 or eu-west-1, "
            f"or a domain such as mypurecloud.ie (known keys: {', '.join(sorted(DOMAINS))})"
        )
    return Hosts(login_url=f"https://login.{domain}", api_url=f"https://api.{domain}")
