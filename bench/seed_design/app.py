"""The seed's Flask refund endpoint, as its article builds it, against the local Stripe sandbox.

`POST /refund-request` with `{"charge_id", "amount", "reason"}`: `stripe.Charge.retrieve`,
then, at or under the 5000-cent threshold, `stripe.Refund.create` inline in the request, a
synchronous Slack post (`requests.post`, a new connection each time) and a row in SQLite's
`refund_log`; over it, a row in `pending_refunds` and the Slack post. Answers 200 with
`{"status": "auto_approved", "refund_id"}` or `{"status": "pending_approval"}`.
`POST /approve-refund` with `{"pending_id"}` refunds a queued row. The seed's global-key SDK
style (`stripe.api_key`, `stripe.Charge.retrieve`) and its SQLite habits (a connection per
call, default journal) are kept.

One addition: a body may carry `payment_intent` instead of `charge_id` (what a support tool
holds today); the app then retrieves the PaymentIntent first for its `latest_charge`, a
second lookup (`intake_vs_seed.py --seed-lookup payment_intent`; the earlier FACTS figures).

Left out, as in the seed: authentication and permissions, idempotency (a retried request
refunds twice; Refund.create carries no idempotency key), a check of what was already
refunded, validation (a missing field is a 500), error handling (a Stripe error or a slow
Slack is a 500 or a slow answer after the money moved), any audit trail beyond the log row,
currency handling, a rate limit. Environment: STRIPE_SECRET_KEY, STRIPE_API_BASE,
SLACK_WEBHOOK_URL, SEED_DB (the SQLite file).
"""

import os
import sqlite3
from datetime import datetime

import requests
import stripe
from flask import Flask, jsonify, request

app = Flask(__name__)
stripe.api_key = os.getenv("STRIPE_SECRET_KEY")
stripe.api_base = os.getenv("STRIPE_API_BASE", stripe.api_base)
DB = os.getenv("SEED_DB", "refunds.db")
AUTO_APPROVE_THRESHOLD = 5000  # $50.00 in cents


def create_tables():
    """The seed shows the inserts, not the schema; these are the columns they use."""
    conn = sqlite3.connect(DB)
    conn.executescript("""
        CREATE TABLE IF NOT EXISTS pending_refunds (id INTEGER PRIMARY KEY, charge_id TEXT, amount INTEGER,
            reason TEXT, requested_at TEXT, status TEXT);
        CREATE TABLE IF NOT EXISTS refund_log (id INTEGER PRIMARY KEY, refund_id TEXT, charge_id TEXT,
            amount INTEGER, status TEXT, processed_at TEXT);
    """)
    conn.close()


create_tables()


@app.route("/refund-request", methods=["POST"])
def handle_refund_request():
    data = request.json
    if "payment_intent" in data:  # the one addition (see the docstring)
        charge_id = stripe.PaymentIntent.retrieve(data["payment_intent"]).latest_charge
    else:
        charge_id = data["charge_id"]
    amount = data.get("amount")  # None = full refund
    reason = data.get("reason", "requested_by_customer")

    charge = stripe.Charge.retrieve(charge_id)
    if (amount or charge.amount) <= AUTO_APPROVE_THRESHOLD:
        refund = process_refund(charge_id, amount, reason)
        return jsonify({"status": "auto_approved", "refund_id": refund.id})
    queue_for_approval(charge_id, amount, reason)
    return jsonify({"status": "pending_approval"})


def process_refund(charge_id, amount, reason):
    refund_params = {"charge": charge_id, "reason": reason}
    if amount:
        refund_params["amount"] = amount
    refund = stripe.Refund.create(**refund_params)
    notify_team(refund, "auto_approved")
    log_refund(refund)
    return refund


def queue_for_approval(charge_id, amount, reason):
    conn = sqlite3.connect(DB)
    conn.execute("""
        INSERT INTO pending_refunds (charge_id, amount, reason, requested_at, status)
        VALUES (?, ?, ?, ?, 'pending')
    """, (charge_id, amount, reason, datetime.now().isoformat()))
    conn.commit()
    conn.close()
    notify_team({"charge_id": charge_id, "amount": amount}, "needs_approval")


@app.route("/approve-refund", methods=["POST"])
def approve_refund():
    data = request.json
    refund_id = data["pending_id"]
    conn = sqlite3.connect(DB)
    row = conn.execute("SELECT charge_id, amount, reason FROM pending_refunds WHERE id = ?", (refund_id,)).fetchone()
    if not row:
        return jsonify({"error": "not_found"}), 404
    refund = process_refund(row[0], row[1], row[2])
    conn.execute("UPDATE pending_refunds SET status = 'approved' WHERE id = ?", (refund_id,))
    conn.commit()
    return jsonify({"status": "approved", "refund_id": refund.id})


def notify_team(refund_data, status):
    webhook_url = os.getenv("SLACK_WEBHOOK_URL")
    message = f"Refund {status}: {refund_data}"
    requests.post(webhook_url, json={"text": message})


def log_refund(refund):
    conn = sqlite3.connect(DB)
    conn.execute("""
        INSERT INTO refund_log (refund_id, charge_id, amount, status, processed_at)
        VALUES (?, ?, ?, ?, ?)
    """, (refund.id, refund.charge, refund.amount, refund.status, datetime.now().isoformat()))
    conn.commit()
