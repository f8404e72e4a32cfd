"""kombu's filesystem transport (the embedded defaults' broker: no Redis), with each message
written whole before a reader can see it.

kombu's own `Channel._put` creates `<time>_<uuid>.<queue>.msg` and then writes into it, under an
advisory lock that `_get` never takes: a worker listing the folder in between takes an empty file,
and `loads('')` ends the worker ("Unrecoverable error: JSONDecodeError", seen in a test's worker
while beat was sending). Here the message is written under a name the reader skips (`….msg.part`:
kombu matches the part after the first dot to `<queue>.msg` exactly) and then renamed into
place, which is atomic within one folder. Selected in settings (CELERY_BROKER_TRANSPORT) only
for a `filesystem://` broker.
"""

import os
import uuid
from time import monotonic

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps


class Channel(filesystem.Channel):
    def _put(self, queue, payload, **kwargs):
        """Put `payload` onto `queue`, under the name kombu gives it (the time in ms first)."""
        name = f"{int(round(monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        partial = f"{final}.part"
        try:
            with open(partial, "wb") as file:
                file.write(str_to_bytes(dumps(payload)))
            os.replace(partial, final)
        except OSError as exc:
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc


class Transport(filesystem.Transport):
    Channel = Channel
