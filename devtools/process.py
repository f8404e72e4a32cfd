"""Start a sandbox server as its own process and learn its address from its ready line."""

import contextlib
import select
import subprocess
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def serve(command: list[str], *, ready_prefix: bytes, error: type[Exception], name: str,
          log_path=None, startup_timeout: float = 20.0):
    """Run `command` (a server that prints `ready_prefix` + its base URL on stdout when it
    listens); yield (base_url, pid); stop it on exit, also after errors."""
    log = open(log_path, "w+b") if log_path else tempfile.TemporaryFile()
    process = subprocess.Popen(command, cwd=REPO_ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log)
    try:
        yield _wait_until_listening(process, log, startup_timeout, ready_prefix, error, name), process.pid
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        process.stdout.close()
        log.close()


def _wait_until_listening(process, log, timeout, ready_prefix, error, name):
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        ready, _, _ = select.select([process.stdout], [], [], left)
        if not ready:
            break
        line = process.stdout.readline()
        if line.startswith(ready_prefix):
            return line[len(ready_prefix):].decode().strip()
        if not line:  # the process exited
            break
    process.kill()
    exit_code = process.wait()
    log.seek(0)
    tail = log.read()[-4000:].decode(errors="replace")
    raise error(f"{name} did not start (exit code {exit_code}):\n{tail}")


async def serve_until_signalled(runner) -> None:
    """Inside a sandbox process: wait for SIGINT/SIGTERM, then clean the aiohttp runner up."""
    import asyncio
    import signal

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
