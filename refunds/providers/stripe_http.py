"""The HTTP client the Stripe SDK sends through: one urllib3 pool per process, its threads sharing it.

The SDK documents `stripe.HTTPClient` subclasses for this (`http_client=`). Its own RequestsClient
goes through `requests`, whose Session prepares every request again (cookies, hooks, auth,
environment, redirects) before handing it to urllib3, which is what sends it. Measured in one
process against the sandbox (bench/README.md, "Stripe's HTTP through urllib3"), this process's CPU
per call: a payment lookup 665-738 us through requests (one shared Session) against 399-437 through
urllib3 directly, a refund's create 647-780 against 444-463. What requests gave that matters is kept:
- the environment's proxy for the API's address (HTTP(S)_PROXY, ALL_PROXY, NO_PROXY), chosen as
  requests chooses it, read once when the process makes the client, its user:password sent as
  Proxy-Authorization;
- certificates verified against the SDK's CA bundle, as the SDK has requests do;
- network failures raised as the SDK's APIConnectionError (a transient provider error to us).
It reads no ~/.netrc and keeps no cookies (the API needs neither); nothing is retried here
(retries belong to the task layer), and redirects are not followed (Stripe's API sends none).
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping

import requests
import stripe
import urllib3

# Connections kept open to Stripe per process: one per thread calling at once (a worker runs 24).
POOL_SIZE = 64


def _proxy_manager(proxy: str, **pool) -> urllib3.PoolManager:
    auth = urllib3.util.parse_url(proxy).auth
    headers = urllib3.make_headers(proxy_basic_auth=urllib.parse.unquote(auth)) if auth else None
    if proxy.lower().startswith("socks"):
        from urllib3.contrib.socks import SOCKSProxyManager  # needs PySocks, as requests does

        return SOCKSProxyManager(proxy, **pool)
    return urllib3.ProxyManager(proxy, proxy_headers=headers, **pool)


class Urllib3Client(stripe.HTTPClient):
    name = "urllib3"

    def __init__(self, *, timeout: float, api_base: str, pool_size: int = POOL_SIZE):
        super().__init__()
        self._timeout = urllib3.Timeout(connect=timeout, read=timeout)
        pool = {"num_pools": 4, "maxsize": pool_size, "cert_reqs": "CERT_REQUIRED", "ca_certs": stripe.ca_bundle_path}
        proxy = requests.utils.select_proxy(api_base, requests.utils.get_environ_proxies(api_base))
        self.proxy = proxy or ""
        self._pool = _proxy_manager(proxy, **pool) if proxy else urllib3.PoolManager(**pool)

    def request(self, method: str, url: str, headers: Mapping[str, str] | None, post_data=None):
        try:
            answer = self._pool.request(
                method.upper(), url, body=post_data, headers=dict(headers or {}), timeout=self._timeout,
                retries=False, redirect=False,
            )
        except (urllib3.exceptions.HTTPError, OSError) as error:
            raise stripe.APIConnectionError(
                f"Unexpected error communicating with Stripe. (Network error: {type(error).__name__}: {error})",
                should_retry=True,
            ) from error
        return answer.data, answer.status, answer.headers

    def close(self):
        self._pool.clear()
