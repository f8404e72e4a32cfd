"""Bulk refunds: the file read (refused by line, nothing filed), the dry run at the Stripe sandbox
(auto-approved, needs approval, refused and why, other rows of the file counted), filing through
intake (idempotent: a re-upload or a rerun files nothing twice), approving the waiting rows."""

import pytest

from approvals.models import ApproverLimit, AutoApproveThreshold
from refunds import errors
from refunds.models import RefundBatch, RefundBatchRow, RefundRequest, RefundStatus
from refunds.services import batch_runs, batches
from refunds.visibility import refund_batches_visible_to
from tests import factories

pytestmark = pytest.mark.django_db

HEADER = "merchant_refund_id,provider,connector_transaction_id,amount,currency,reason_code,note,product\n"


def csv_bytes(*lines: str, header: str = HEADER) -> bytes:
    return (header + "".join(line + "\n" for line in lines)).encode()


def upload(user, *lines: str) -> RefundBatch:
    return batches.refund_batch_create(user=user, data=csv_bytes(*lines), file_name="outage.csv")


def run(batch: RefundBatch) -> RefundBatch:
    batch_runs.refund_batch_run(batch_id=batch.pk)
    batch.refresh_from_db()
    return batch


def plans(batch: RefundBatch) -> dict[int, tuple[str, str]]:
    return {row.line: (row.plan, row.message) for row in batch.rows.order_by("line")}


@pytest.fixture
def threshold(db):
    AutoApproveThreshold.objects.create(currency="USD", max_minor_amount=5000)


# --- the file ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data, expected",
    [
        (b"", "The file is empty"),
        (b"\xef\xbb\xbf", "The file is empty"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "not a text file"),
        (b"merchant_refund_id,provider\n\xff\xfe,x\n", "Line 2: the file is not UTF-8"),
        (HEADER.replace(",", ";").encode() + b"a;stripe;pi_1;1.00;USD;;;\n", "separated by semicolons"),
        (b"id,amount\nx,1\n", "Line 1: missing columns merchant_refund_id, provider, connector_transaction_id"),
        (HEADER.encode(), "no refunds"),
        (csv_bytes("a,stripe,pi_1,1.00,USD,,,", "b,stripe,pi_2,1.00,USD,,"), "Line 3: 7 values for 8 columns"),
        (csv_bytes("a,stripe,pi_1,1.00,USD,,," + "x" * 5000), "Line 2: a value is longer than 4,096"),
        (csv_bytes(",stripe,pi_1,1.00,USD,,,"), "Line 2: merchant_refund_id is empty"),
        (csv_bytes('a,stripe,pi_1,1.00,USD,,"unclosed'), "cannot be read as CSV"),
        (csv_bytes("a,stripe,pi_1,1.00,USD,,bell\x07,"), "Line 2: note contains control characters"),
    ],
    ids=["empty", "bom-only", "binary", "not-utf8", "semicolons", "no-columns", "header-only", "short-row",
         "huge-cell", "no-id", "bad-quote", "control"],
)
def test_a_file_that_cannot_be_read_is_refused_by_line_and_nothing_is_kept(agent, data, expected):
    with pytest.raises(batches.BatchFileError) as refused:
        batches.refund_batch_create(user=agent, data=data, file_name="bad.csv")

    assert expected in " | ".join(refused.value.problems)
    assert not RefundBatch.objects.exists() and not RefundRequest.objects.exists()


def test_a_bom_and_crlf_file_is_read(agent):
    data = ("\ufeff" + HEADER.replace("\n", "\r\n") + "a-1,stripe,pi_1,1.00,USD,,,\r\n").encode()
    batch = batches.refund_batch_create(user=agent, data=data)
    assert batch.rows.get().merchant_refund_id == "a-1"


def test_too_many_rows_is_refused_with_the_limit(agent, settings):
    settings.REFUND_BATCH_MAX_ROWS = 3
    with pytest.raises(batches.BatchFileError, match="Line 5: the file has more than 3 rows"):
        upload(agent, *[f"r{i},stripe,pi_{i},1.00,USD,,," for i in range(4)])


def test_a_file_over_the_size_limit_is_refused_unread(agent, settings):
    settings.REFUND_BATCH_MAX_BYTES = 100
    with pytest.raises(batches.BatchFileError, match="the limit is"):
        upload(agent, *[f"r{i},stripe,pi_{i},1.00,USD,,," for i in range(5)])


def test_values_readable_but_wrong_are_that_rows_refusal(agent):
    batch = upload(
        agent,
        "ok-1,stripe,pi_1,\"1,234.50\",USD,,,",
        "comma,stripe,pi_1,\"1,50\",USD,,,",  # German notation: ambiguous in this file's notation
        "decimals,stripe,pi_1,1.500,USD,,,",
        "ok-1,stripe,pi_2,1.00,USD,,,",
        "nocur,stripe,pi_2,1.00,,,,",
        "badcur,stripe,pi_2,1.00,XXX,,,",
        "who,paypal,pi_2,1.00,USD,,,",
        "code,stripe,pi_2,1.00,USD,nonsense,,",
        "neg,stripe,pi_2,-1.00,USD,,,",
    )

    got = plans(batch)
    assert got[2] == ("", "")  # for the dry run
    assert batch.rows.get(line=2).amount_minor == 123450
    assert got[3][0] == "refused" and "“1,50” is not an amount in English" in got[3][1]
    assert "USD has 2 decimal places" in got[4][1]
    assert got[5] == ("refused", "duplicate id: merchant_refund_id ok-1 is also on line 2.")
    assert got[6][1] == "an amount needs its currency (the currency column is empty)."
    assert "not a known ISO 4217 code" in got[7][1]
    assert got[8][1] == "unknown provider 'paypal'."
    assert got[9][1] == "unknown reason code 'nonsense'."
    assert "without a sign" in got[10][1]
    assert batch.rows_checked == 8 and batch.state == "checking"


# --- the dry run -------------------------------------------------------------------------


def test_the_dry_run_says_what_would_happen_to_each_row_and_files_nothing(agent, stripe_sandbox, threshold):
    small, large, euro = (stripe_sandbox.create_payment(10_000), stripe_sandbox.create_payment(20_000),
                          stripe_sandbox.create_payment(3_000, currency="eur"))
    batch = upload(
        agent,
        f"a-1,stripe,{small},20.00,USD,,Outage,",
        f"a-2,stripe,{small},20.00,USD,,Outage,",  # 40.00 auto-approved on the payment: still under 50.00
        f"a-3,stripe,{small},20.00,USD,,Outage,",  # 60.00 would pass the threshold: needs a person
        f"a-4,stripe,{small},50.00,USD,,Outage,",  # 60.00 of 100.00 taken by the lines above: over-refund
        f"a-5,stripe,{large},,,,Outage,",  # everything: 200.00, over the threshold
        f"a-6,stripe,{euro},10.00,USD,,Outage,",
        "a-7,stripe,pi_doesnotexist,10.00,USD,,Outage,",
    )

    batch = run(batch)

    got = plans(batch)
    assert batch.state == RefundBatch.State.CHECKED and batch.rows_checked == 7
    assert got[2][0] == got[3][0] == "auto"
    assert got[4] == ("approval", "needs a finance manager: auto-approved refunds on this payment would pass the "
                                  "50.00 USD threshold after lines 2, 3 of this file.")
    assert got[5] == ("refused", "over-refund: 50.00 USD exceeds what remains refundable (40.00 USD) after lines "
                                 "2, 3, 4 of this file.")
    assert got[6][0] == "approval" and "200.00 USD is over the 50.00 USD threshold" in got[6][1]
    assert batch.rows.get(line=6).planned_minor == 20_000
    assert got[7] == ("refused", "currency: the payment is in EUR, the row says USD.")
    assert got[8][0] == "refused" and got[8][1].startswith("unknown payment: stripe knows no transaction")
    assert batch.totals["USD"] == {"auto": 4000, "auto_rows": 2, "approval": 22_000, "approval_rows": 2,
                                   "refused": 7000, "refused_rows": 3}
    assert not RefundRequest.objects.exists()


def test_the_dry_run_counts_refunds_already_auto_approved_on_the_payment(agent, api, stripe_sandbox, threshold):
    pi = stripe_sandbox.create_payment(10_000)
    filed = api(agent).post("/api/refunds/", {"merchant_refund_id": "earlier", "connector_transaction_id": pi,
                                              "amount": {"minor_amount": 4000, "currency": "USD"}}, format="json")
    assert filed.json()["status"] == "approved"

    batch = run(upload(agent, f"b-1,stripe,{pi},20.00,USD,,,", f"b-2,stripe,{pi},,,,,"))

    assert plans(batch)[2][0] == "approval"  # 40.00 + 20.00 > 50.00, as intake will judge it
    assert plans(batch)[3] == ("approval", "needs a finance manager: auto-approved refunds on this payment would "
                                           "pass the 50.00 USD threshold after line 2 of this file.")
    assert batch.rows.get(line=3).planned_minor == 4000  # 100.00 - 40.00 - 20.00


# --- filing ------------------------------------------------------------------------------


def test_nothing_is_filed_until_the_uploader_confirms_then_each_row_is_filed_once(agent, manager, stripe_sandbox, threshold):
    pi = stripe_sandbox.create_payment(10_000)
    batch = run(upload(agent, f"c-1,stripe,{pi},20.00,USD,,Outage,Pro", f"c-2,stripe,{pi},60.00,USD,,Outage,Pro",
                       f"c-3,stripe,{pi},30.00,USD,,Outage,Pro"))
    assert batch_runs.refund_batch_run(batch_id=batch.pk) == "not claimed"  # checked: waits for a person
    assert not RefundRequest.objects.exists()
    with pytest.raises(errors.PermissionDenied):
        batches.refund_batch_confirm(batch_id=batch.pk, user=manager)

    batches.refund_batch_confirm(batch_id=batch.pk, user=agent)
    batches.refund_batch_confirm(batch_id=batch.pk, user=agent)  # a double click
    batch = run(batch)

    assert batch.state == RefundBatch.State.DONE and batch.rows_done == 3
    rows = {row.line: row for row in batch.rows.select_related("refund")}
    assert rows[2].outcome == "filed" and rows[2].refund.status == RefundStatus.APPROVED
    assert rows[2].refund.requested_by == agent and rows[2].refund.product == "Pro" and rows[2].refund.reason == "Outage"
    assert rows[3].outcome == "filed" and rows[3].refund.status == RefundStatus.PENDING_APPROVAL
    assert rows[4].outcome == "skipped" and rows[4].refund is None  # over-refund in the dry run
    assert RefundRequest.objects.count() == 2
    lines = b"".join(line.encode() for line in batches.batch_results_csv(batch)).decode().splitlines()
    assert lines[0].startswith("line,merchant_refund_id")
    assert lines[1] == f"2,c-1,stripe,{pi},20.00,USD,auto,filed,approved,,Approved."
    assert lines[3].startswith(f"4,c-3,stripe,{pi},30.00,USD,refused,skipped,,,\"over-refund: 30.00 USD exceeds")


def test_uploading_the_same_file_again_files_nothing_twice(agent, stripe_sandbox, threshold):
    pi = stripe_sandbox.create_payment(10_000)
    # One row with a reason code: the code is part of what makes the second upload the same request.
    lines = (f"d-1,stripe,{pi},10.00,USD,product_return,Outage,", f"d-2,stripe,{pi},10.00,USD,,Outage,")
    first = run(upload(agent, *lines))
    batches.refund_batch_confirm(batch_id=first.pk, user=agent)
    run(first)

    again = run(upload(agent, *lines))
    assert {plan for plan, _ in plans(again).values()} == {"already"}
    batches.refund_batch_confirm(batch_id=again.pk, user=agent)
    again = run(again)

    assert RefundRequest.objects.count() == 2
    assert set(again.rows.values_list("outcome", flat=True)) == {"already"}
    assert set(again.rows.values_list("refund__merchant_refund_id", flat=True)) == {"d-1", "d-2"}


def test_an_id_used_for_another_refund_is_refused_as_a_duplicate(agent, api, stripe_sandbox):
    pi = stripe_sandbox.create_payment(10_000)
    api(agent).post("/api/refunds/", {"merchant_refund_id": "taken", "connector_transaction_id": pi,
                                      "amount": {"minor_amount": 100, "currency": "USD"}}, format="json")

    batch = run(upload(agent, f"taken,stripe,{pi},2.00,USD,,,"))

    assert plans(batch)[2] == ("refused", "duplicate id: merchant_refund_id taken was already used for another refund.")


def test_a_rerun_after_a_worker_died_mid_batch_files_each_row_once(agent, stripe_sandbox, threshold):
    pi = stripe_sandbox.create_payment(100_000)
    batch = run(upload(agent, *[f"e-{i},stripe,{pi},1.00,USD,,,"for i in range(6)]))
    batches.refund_batch_confirm(batch_id=batch.pk, user=agent)
    # A worker filed two rows, then died after filing the third but before recording it.
    claimed, token = batch_runs._claim(batch.pk)
    for row in batch.rows.order_by("line")[:3]:
        batch_runs._file_row(row, agent)
        if row.line < 4:
            row.save(update_fields=["outcome", "error_code", "message", "refund"])
    RefundBatchRow.objects.filter(batch=batch, line=4).update(outcome="", refund=None)
    assert RefundRequest.objects.count() == 3

    assert batch_runs.refund_batch_run(batch_id=batch.pk) == "not claimed"  # its lease still runs
    RefundBatch.objects.filter(pk=batch.pk).update(lease_until=claimed.created_at)  # lapsed
    assert batch.pk in batch_runs.refund_batches_sweep()
    batch = run(batch)

    assert batch.state == "done" and RefundRequest.objects.count() == 6
    assert sorted(batch.rows.values_list("refund__merchant_refund_id", flat=True)) == [f"e-{i}" for i in range(6)]


# --- approving the waiting rows ----------------------------------------------------------


def test_a_manager_approves_the_waiting_rows_within_their_limit_never_their_own(agent, manager, stripe_sandbox, threshold):
    ApproverLimit.objects.create(user=manager, currency="USD", max_minor_amount=100_000)
    pis = [stripe_sandbox.create_payment(300_000) for _ in range(2)]
    batch = run(upload(agent, f"f-1,stripe,{pis[0]},900.00,USD,,,", f"f-2,stripe,{pis[1]},2000.00,USD,,,"))
    batches.refund_batch_confirm(batch_id=batch.pk, user=agent)
    run(batch)

    with pytest.raises(errors.PermissionDenied):
        batch_runs.refund_batch_approve_waiting(batch_id=batch.pk, approver=agent)
    decisions = batch_runs.refund_batch_approve_waiting(batch_id=batch.pk, approver=manager, comment="outage")

    assert [(d.line, d.approved) for d in decisions] == [(2, True), (3, False)]
    assert "over your limit (1,000.00 USD); left waiting" in decisions[1].message
    assert RefundRequest.objects.get(merchant_refund_id="f-1").status == RefundStatus.APPROVED
    assert RefundRequest.objects.get(merchant_refund_id="f-2").status == RefundStatus.PENDING_APPROVAL


def test_a_manager_cannot_approve_a_batch_they_filed(manager, stripe_sandbox, threshold):
    pi = stripe_sandbox.create_payment(300_000)
    batch = run(batches.refund_batch_create(user=manager, data=csv_bytes(f"g-1,stripe,{pi},900.00,USD,,,")))
    batches.refund_batch_confirm(batch_id=batch.pk, user=manager)
    run(batch)

    with pytest.raises(errors.PermissionDenied, match="Nobody approves a batch they filed"):
        batch_runs.refund_batch_approve_waiting(batch_id=batch.pk, approver=manager)
    assert RefundRequest.objects.get().status == RefundStatus.PENDING_APPROVAL


def test_only_those_who_file_refunds_may_upload(accountant):
    with pytest.raises(errors.PermissionDenied):
        upload(accountant, "h-1,stripe,pi_1,1.00,USD,,,")


def test_agents_see_their_own_batches_managers_see_all(agent, manager):
    other = factories.agent(username="other")
    mine, theirs = upload(agent, "i-1,stripe,pi_1,1.00,USD,,,"), upload(other, "i-2,stripe,pi_1,1.00,USD,,,")
    assert list(refund_batches_visible_to(agent)) == [mine]
    assert set(refund_batches_visible_to(manager)) == {mine, theirs}
