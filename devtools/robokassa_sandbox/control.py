"""Start the emulator as its own process and drive it over HTTP (pytest fixture, seed_demo)."""

import contextlib
import sys
from decimal import Decimal

import requests

from devtools.process import serve

from . import DEFAULT_MERCHANT_LOGIN, DEFAULT_PASSWORD2, DEFAULT_PASSWORD3, REFUND_BEHAVIORS

READY_PREFIX = b"robokassa-sandbox listening on "


class SandboxError(RuntimeError):
    pass


class Sandbox:
    def __init__(self, base_url, merchant_login=DEFAULT_MERCHANT_LOGIN, password3=DEFAULT_PASSWORD3,
                 settle_seconds=None, pid=None, password2=DEFAULT_PASSWORD2):
        self.base_url = base_url.rstrip("/")
        self.merchant_login = merchant_login
        self.password2 = password2
        self.password3 = password3
        self.settle_seconds = settle_seconds
        self.pid = pid
        self._http = requests.Session()

    def _config(self, method, path, payload=None):
        response = self._http.request(method, f"{self.base_url}/_config/{path}", json=payload, timeout=10)
        if response.status_code >= 400:
            raise SandboxError(f"{method} /_config/{path}: {response.status_code} {response.text}")
        return response.json() if response.content else None

    def create_payment(self, minor_amount: int, *, behavior: str | None = None, description: str = "",
                       op_key: str | None = None, state: int | None = None, no_op_key: bool = False) -> str:
        """An operation of `minor_amount` kopeks (paid unless `state` says otherwise: 5, 10, 50,
        80); returns its InvoiceID, as text (a connector_transaction_id)."""
        if behavior is not None and behavior not in REFUND_BEHAVIORS:
            raise ValueError(f"unknown refund behavior {behavior!r}")
        rubles = Decimal(minor_amount).scaleb(-2)
        return str(self._config("POST", "payments", {"amount": str(rubles), "behavior": behavior,
                                                     "description": description, "op_key": op_key,
                                                     "state": state, "no_op_key": no_op_key})["invoice_id"])

    def payment(self, invoice_id: str) -> dict:
        """The emulator's record: op_key, amount, state, refunds (request ids), refunds_made (each
        refund request as received: amount, items)."""
        return self._config("GET", f"payments/{invoice_id}")

    def settle(self, request_id: str, label: str) -> dict:
        """Force a processing refund to finished or canceled."""
        return self._config("POST", f"refunds/{request_id}/settle", {"label": label})

    def add_fault(self, status: int | None = 500, *, count: int | None = 1, delay_seconds: float | None = None,
                  path_prefix: str = "/RefundService", after: bool = False) -> list:
        return self._config("POST", "faults", {"status": status, "count": count, "delay_seconds": delay_seconds,
                                               "path_prefix": path_prefix, "after": after})["faults"]

    def set_faults(self, status: int | None = 500, **rule) -> list:
        self.clear_faults()
        return self.add_fault(status, **rule)

    def clear_faults(self) -> None:
        self._config("DELETE", "faults")

    def reset_config(self) -> None:
        self.clear_faults()

    def stats(self) -> dict:
        return self._config("GET", "stats")

    def reset_data(self) -> None:
        self._config("DELETE", "data")


@contextlib.contextmanager
def launch(*args: str, settle_seconds: float | None = None, merchant_login: str = DEFAULT_MERCHANT_LOGIN,
           password3: str = DEFAULT_PASSWORD3, password2: str = DEFAULT_PASSWORD2, log_path=None, quiet=False,
           startup_timeout: float = 20.0):
    """Run `python -m devtools.robokassa_sandbox` on a free 127.0.0.1 port; yield a Sandbox."""
    command = [sys.executable, "-m", "devtools.robokassa_sandbox", "--host", "127.0.0.1", "--port", "0",
               "--merchant-login", merchant_login, "--password3", password3, "--password2", password2, *args]
    if settle_seconds is not None:
        command += ["--settle-seconds", str(settle_seconds)]
    if quiet:
        command.append("--quiet")
    with serve(command, ready_prefix=READY_PREFIX, error=SandboxError, name="robokassa sandbox",
               log_path=log_path, startup_timeout=startup_timeout) as (base_url, pid):
        yield Sandbox(base_url, merchant_login, password3, settle_seconds, pid, password2)
