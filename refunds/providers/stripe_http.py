"""The HTTP client the Stripe SDK sends through: one urllib3 pool per process, its threads sharing it.

The SDK documents `stripe.HTTPClient` subclasses for this (`http_client=`). Its own RequestsClient
goes through `requests`, whose Session prepares every request again (cookies, hooks, auth,
environment, redirects) before handing it to urllib3, which is what sends it. Measured in one
process against the sandbox (bench/README.md, "Stripe's HTTP through urllib3"), this process's CPU
per call: a payment lookup 665-738 us through requests (one shared Session) against 399-437 through
urllib3 directly, a refund's create 647-780 against 444-463. What requests gave that matters is kept:
- the environment's proxy for the API's address (HTTP(S)_PROXY, ALL_PROXY, NO_PROXY), chosen and
  read as requests reads it ("proxy:3128" is http://proxy:3128), once when the process makes the
  client, its user:password sent as Proxy-Authorization; one that cannot be used (no host, an
  unknown scheme, socks without PySocks) fails each call as a network error, as with requests;
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
    proxy = requests.utils.prepend_scheme_if_needed(proxy, "http")  # "proxy:3128", as requests reads it
    parsed = urllib3.util.parse_url(proxy)
    if not parsed.host:
        raise urllib3.exceptions.LocationParseError(proxy)
    headers = urllib3.make_headers(proxy_basic_auth=urllib.parse.unquote(parsed.auth)) if parsed.auth else None
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
        self._unusable = ""  # why the environment's proxy cannot be used: each call fails, as with requests
        try:
            self._pool = _proxy_manager(proxy, **pool) if proxy else urllib3.PoolManager(**pool)
        except (TypeError, ValueError, ImportError, urllib3.exceptions.HTTPError) as error:
            # Not the URL or the error's text, which may hold the proxy's password.
            self._unusable = f"the environment's proxy for {api_base} cannot be used: {type(error).__name__}"

    def request(self, method: str, url: str, headers: Mapping[str, str] | None, post_data=None):
        if self._unusable:
            raise stripe.APIConnectionError(f"Unexpected error communicating with Stripe ({self._unusable}).")
        try:
            answer = self._pool.request(
                method.upper(), url, body=post_data, headers=dict(headers or {}), timeout=self._timeout,
                retries=False, redirect=False,
            )
        except (urllib3.exceptions.HTTPError, OSError, ValueError) as error:
            raise stripe.APIConnectionError(
                f"Unexpected error communicating with Stripe. (Network error: {type(error).__name__}: {error})",
                should_retry=True,
            ) from error
        return answer.data, answer.status, answer.headers

    def close(self):
        if not self._unusable:
            self._pool.clear()
