import pytest
from django.utils import timezone

from approvals.models import Approval
from devtools.demo.history import HISTORY_BATCH, demo_history_create
from refunds.models import OPEN_STATUSES, RefundLog, RefundRequest, Sale
from tests import factories


@pytest.mark.django_db
def test_demo_history_gives_the_reports_finished_past_refunds_and_their_sales_once():
    users = {name: factories.UserFactory(username=name) for name in ("agent", "manager", "manager2")}

    made = demo_history_create(users=users, days=30)

    assert made > 50
    history = RefundRequest.objects.all()
    assert history.count() == made
    # Nothing the dispatcher would pick up: demo history never reaches a provider.
    assert not history.filter(status__in=OPEN_STATUSES).exists()
    now = timezone.now()
    for refund in history[:50]:
        assert refund.created_at < refund.resolved_at < now
        assert refund.approvals.exists()
        assert [log.created_at for log in refund.logs.all()] == sorted(log.created_at for log in refund.logs.all())
        assert refund.logs.first().created_at == refund.created_at
    assert Approval.objects.filter(decision=Approval.Decision.AUTO_APPROVED).exists()
    assert Sale.objects.filter(import_batch=HISTORY_BATCH).count() > made
    logs = RefundLog.objects.count()

    assert demo_history_create(users=users, days=30) == 0
    assert RefundRequest.objects.count() == made and RefundLog.objects.count() == logs
