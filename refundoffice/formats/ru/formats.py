from refundoffice.formats.en.formats import *  # noqa: F403 - the same date notation everywhere
