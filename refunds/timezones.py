"""Times are shown in the reader's time zone: the browser says which (refunds/static/refunds/
timezone.js sets the `tz` cookie from Intl), and a name that is not a known IANA zone is
ignored (the server's TIME_ZONE then). Stored times stay UTC."""

import functools
import zoneinfo

from django.utils import timezone

COOKIE = "tz"


@functools.cache
def _known_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def zone_from_name(name: str | None) -> zoneinfo.ZoneInfo | None:
    if not name or len(name) > 64 or name not in _known_zones():
        return None
    return zoneinfo.ZoneInfo(name)


class UserTimeZoneMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        zone = zone_from_name(request.COOKIES.get(COOKIE))
        if zone is None:
            timezone.deactivate()
        else:
            timezone.activate(zone)
        try:
            return self.get_response(request)
        finally:
            timezone.deactivate()
