"""python -m devtools.slack_emulator --host 127.0.0.1 --port 8440 [...]

Prints one line to stdout once it accepts connections:
    slack-emulator listening on http://HOST:PORT
(--port 0 picks a free port; launchers read the real one from that line). The Web API is under
/api/ (point slack_sdk's base_url there); the page people click is /.
"""

import argparse
import asyncio
import json
import logging
import os
import sys

from aiohttp import web

from devtools.process import serve_until_signalled

from . import DEFAULT_SIGNING_SECRET, DEFAULT_TOKEN
from .app import build_app


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m devtools.slack_emulator", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8440, help="0 picks a free port")
    parser.add_argument("--token", default=os.environ.get("SLACK_BOT_TOKEN") or DEFAULT_TOKEN,
                        help="the bot token the Web API accepts (default: $SLACK_BOT_TOKEN or the emulator's)")
    parser.add_argument("--signing-secret", default=os.environ.get("SLACK_SIGNING_SECRET") or DEFAULT_SIGNING_SECRET,
                        help="signs interaction payloads (default: $SLACK_SIGNING_SECRET or the emulator's)")
    parser.add_argument("--interactions-url", default="",
                        help="where button clicks and modal submissions are posted (the app's /slack/interactions)")
    parser.add_argument("--users", default="",
                        help='JSON list of {"id", "name", "real_name"}: the people on the page')
    parser.add_argument("--quiet", action="store_true", help="no per-request log lines")
    return parser.parse_args(argv)


async def serve(app, host, port, quiet):
    runner = web.AppRunner(app, access_log=None if quiet else logging.getLogger("slack_emulator.access"))
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    print(f"slack-emulator listening on http://{host}:{runner.addresses[0][1]}", flush=True)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # nobody reads stdout after that line
    await serve_until_signalled(runner)


def main(argv=None):
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
    app = build_app(token=args.token, signing_secret=args.signing_secret, interactions_url=args.interactions_url,
                    users=json.loads(args.users) if args.users else None)
    asyncio.run(serve(app, args.host, args.port, args.quiet))


if __name__ == "__main__":
    main()
