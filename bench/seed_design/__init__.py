"""The seed's design (seeds/000_9123f7f73aa06215.txt), rebuilt for bench/intake_vs_seed.py only.

Benchmark-only code: nothing in the app imports it, and Flask is a dev dependency
(requirements-dev.txt). `app.py` is the seed's Flask app; `slack_sink.py` is the local
stand-in for Slack's incoming webhook that its synchronous notification posts to.
"""
