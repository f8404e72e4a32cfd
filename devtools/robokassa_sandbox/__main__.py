"""python -m devtools.robokassa_sandbox --host 127.0.0.1 --port 8430 [...]

Prints one line to stdout once it accepts connections:
    robokassa-sandbox listening on http://HOST:PORT
(--port 0 picks a free port; launchers read the real one from that line).
"""

import argparse
import asyncio
import logging
import os
import sys

from aiohttp import web

from devtools.process import serve_until_signalled

from . import DEFAULT_MERCHANT_LOGIN, DEFAULT_PASSWORD2, DEFAULT_PASSWORD3, DEFAULT_SIGNATURE_ALGORITHM
from .app import build_app


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m devtools.robokassa_sandbox",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8430, help="0 picks a free port")
    parser.add_argument("--merchant-login", default=os.environ.get("ROBOKASSA_MERCHANT_LOGIN", DEFAULT_MERCHANT_LOGIN))
    parser.add_argument("--password2", default=os.environ.get("ROBOKASSA_PASSWORD2") or DEFAULT_PASSWORD2,
                        help="checks OpStateExt signatures (default: $ROBOKASSA_PASSWORD2 or the sandbox's)")
    parser.add_argument("--signature-algorithm", choices=["MD5", "SHA1", "SHA256", "SHA384", "SHA512"],
                        default=(os.environ.get("ROBOKASSA_SIGNATURE_ALGORITHM") or DEFAULT_SIGNATURE_ALGORITHM).upper(),
                        help="the shop's hash for OpStateExt signatures (default MD5)")
    parser.add_argument("--password3", default=os.environ.get("ROBOKASSA_PASSWORD3") or DEFAULT_PASSWORD3,
                        help="checks the JWT signatures (default: $ROBOKASSA_PASSWORD3 or the sandbox's)")
    parser.add_argument("--settle-seconds", type=float, default=5.0,
                        help="processing refunds settle after this long (default 5)")
    parser.add_argument("--state-file", help="load data from / save it to this JSON file")
    parser.add_argument("--quiet", action="store_true", help="no per-request log lines")
    return parser.parse_args(argv)


async def serve(app, host, port, quiet):
    runner = web.AppRunner(app, access_log=None if quiet else logging.getLogger("robokassa_sandbox.access"),
                           handler_cancellation=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    print(f"robokassa-sandbox listening on http://{host}:{runner.addresses[0][1]}", flush=True)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # nobody reads stdout after that line
    await serve_until_signalled(runner)  # cleanup saves --state-file where there is one


def main(argv=None):
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
    app = build_app(login=args.merchant_login, password3=args.password3, password2=args.password2,
                    signature_algorithm=args.signature_algorithm,
                    settle_seconds=args.settle_seconds, state_file=args.state_file)
    asyncio.run(serve(app, args.host, args.port, args.quiet))


if __name__ == "__main__":
    main()
