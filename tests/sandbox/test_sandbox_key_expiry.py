"""The sandbox forgets idempotency keys when told, as Stripe does after about 24 hours."""

import pytest

from tests.sandbox.helpers import create_refund, new_key, refund_ids

pytestmark = pytest.mark.django_db


def test_a_key_replays_until_it_expires_then_executes_again(sandbox, client):
    pi_id = sandbox.create_payment(1000)
    key = new_key()
    first = create_refund(client, key, payment_intent=pi_id, amount=100)
    assert create_refund(client, key, payment_intent=pi_id, amount=100).id == first.id

    assert sandbox.expire_idempotency_keys() >= 1

    again = create_refund(client, key, payment_intent=pi_id, amount=100)
    assert again.id != first.id
    assert sorted(refund_ids(client, payment_intent=pi_id)) == sorted([first.id, again.id])


def test_one_key_can_be_expired_alone(sandbox, client):
    pi_id = sandbox.create_payment(1000)
    kept, forgotten = new_key(), new_key()
    one = create_refund(client, kept, payment_intent=pi_id, amount=100)
    two = create_refund(client, forgotten, payment_intent=pi_id, amount=100)

    assert sandbox.expire_idempotency_keys(forgotten) == 1
    assert sandbox.expire_idempotency_keys("never-used") == 0

    assert create_refund(client, kept, payment_intent=pi_id, amount=100).id == one.id
    assert create_refund(client, forgotten, payment_intent=pi_id, amount=100).id != two.id
