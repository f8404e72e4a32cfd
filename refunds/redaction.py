"""Secrets never reach a log line, the RefundLog or an error message we store."""

import logging
import re

# Stripe secret, restricted and webhook keys (the whole key: test and sandbox secrets carry
# underscores, webhook secrets may be base64); our API tokens; bearer/basic credentials.
_SECRET = re.compile(
    r"(sk|rk)_(test|live)_[A-Za-z0-9_]+|whsec_[A-Za-z0-9_+/=\-]+|\bro_[A-Za-z0-9_\-]{20,}"
    r"|(?i:\b(authorization|token|bearer|basic)\b(\s*[:=]\s*|\s+))[A-Za-z0-9._~+/\-]{16,}=*"
)


def redact(text: str) -> str:
    return _SECRET.sub("[redacted]", text) if text else text


class RedactSecretsFilter(logging.Filter):
    """Attach to handlers: rewrites each record's final message with secrets removed."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed record is logged as is
            return True
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            # Format the traceback now, so the formatter reuses the redacted text.
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True
