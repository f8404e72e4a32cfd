"""The embedded defaults' broker (no Redis: kombu's filesystem transport, refundoffice/
filesystem_broker.py): a worker reading while a message is being written sees nothing, never a
half-written file (kombu's own creates the file first; a test worker died of `loads('')`)."""

import json
from queue import Empty

import pytest
from django.conf import settings
from kombu import Connection

from refundoffice import filesystem_broker


def channel(folder):
    options = {"data_folder_in": str(folder), "data_folder_out": str(folder), "store_processed": False}
    return Connection("filesystem://", transport=filesystem_broker.Transport, transport_options=options).channel()


def test_a_reader_never_takes_a_message_still_being_written(tmp_path, monkeypatch):
    writer, reader = channel(tmp_path), channel(tmp_path)
    seen = []

    def dumps_while_a_worker_reads(payload):
        # The writer has its file open now: a worker polling at this moment finds nothing.
        try:
            seen.append(reader._get("celery"))
        except Empty:
            seen.append("nothing yet")
        return json.dumps(payload)

    monkeypatch.setattr(filesystem_broker, "dumps", dumps_while_a_worker_reads)
    writer._put("celery", {"task": "refund_submit_task", "n": 1})

    assert seen == ["nothing yet"]
    assert reader._get("celery") == {"task": "refund_submit_task", "n": 1}
    assert list(tmp_path.iterdir()) == []  # taken, and no partial file left behind


def test_every_message_comes_out_once_from_its_own_queue(tmp_path):
    """(In time order to the millisecond, as kombu names them; within one, in any order.)"""
    writer, reader = channel(tmp_path), channel(tmp_path)
    for n in range(5):
        writer._put("celery", {"n": n})
    writer._put("other", {"n": "elsewhere"})
    assert sorted(reader._get("celery")["n"] for _ in range(5)) == [0, 1, 2, 3, 4]
    with pytest.raises(Empty):
        reader._get("celery")
    assert reader._get("other") == {"n": "elsewhere"}


def test_the_settings_choose_it_only_for_a_filesystem_broker():
    if settings.CELERY_BROKER_URL.startswith("filesystem://"):
        assert settings.CELERY_BROKER_TRANSPORT == "refundoffice.filesystem_broker:Transport"
    else:  # Redis (CI) or another broker: kombu picks the transport from the URL
        assert not hasattr(settings, "CELERY_BROKER_TRANSPORT")
