"""python -m devtools.stripe_sandbox --host 127.0.0.1 --port 8420 [...]

Prints one line to stdout once it accepts connections:
    stripe-sandbox listening on http://HOST:PORT
(--port 0 picks a free port; launchers read the real one from that line).
Request logs and warnings go to stderr.
"""

import argparse
import asyncio
import logging
import os
import sys

from aiohttp import web

from devtools.process import serve_until_signalled

from .app import AccessLogger, build_app


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m devtools.stripe_sandbox",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8420,
                        help="0 picks a free port")
    parser.add_argument("--state-file",
                        help="load data from / save it to this file "
                             "(default: keep nothing on disk)")
    parser.add_argument("--rate-limit", type=float, metavar="N",
                        help="answer 429 beyond N /v1 requests per second")
    parser.add_argument("--webhook-url")
    parser.add_argument("--webhook-secret")
    parser.add_argument("--settle-seconds", type=float, default=2.0,
                        help="delay before pending refunds settle "
                             "(default 2)")
    parser.add_argument("--quiet", action="store_true",
                        help="no per-request log lines")
    args = parser.parse_args(argv)
    if bool(args.webhook_url) != bool(args.webhook_secret):
        parser.error("--webhook-url and --webhook-secret go together")
    return args


async def serve(app, host, port, quiet):
    runner = web.AppRunner(
        app,
        access_log_class=AccessLogger,
        access_log=None if quiet else logging.getLogger("stripe_sandbox.access"),
        # Keep executing a request whose client gave up (timeout faults):
        # at Stripe the work happens even if the response is lost.
        handler_cancellation=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound_port = runner.addresses[0][1]
    print(f"stripe-sandbox listening on http://{host}:{bound_port}",
          flush=True)
    # Launchers read only that line: send anything later to stderr so it
    # cannot fill a stdout pipe nobody reads.
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())

    await serve_until_signalled(runner)  # cleanup saves --state-file where there is one


def main(argv=None):
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(message)s")
    app = build_app(settle_seconds=args.settle_seconds,
                    rate_limit=args.rate_limit, state_file=args.state_file,
                    webhook_url=args.webhook_url,
                    webhook_secret=args.webhook_secret)
    asyncio.run(serve(app, args.host, args.port, args.quiet))

if __name__ == "__main__":
    main()
