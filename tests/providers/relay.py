"""Test HTTP servers that stand between the Stripe adapter and the sandbox (a forwarding proxy, a
forwarder that rewrites answers) send the sandbox's answer on with this."""


def send_answer(handler, answer, data: bytes) -> None:
    """`answer` (an http.client response, already read into `data`) as `handler`'s response."""
    handler.send_response(answer.status)
    for key, value in answer.getheaders():
        if key.lower() not in ("transfer-encoding", "connection", "content-length"):
            handler.send_header(key, value)
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)
