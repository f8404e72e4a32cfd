import hashlib
import json
import secrets

from django.contrib.auth import get_user_model
from django.db import connection
from django.utils import timezone
from rest_framework import authentication, exceptions

from refunds import rows
from refunds.auth_backends import permissions_known, permissions_sql
from refunds.models import ApiToken


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def api_token_create(*, user) -> str:
    """Create a token and return its key: the only time the key exists in clear."""
    key = "ro_" + secrets.token_urlsafe(32)
    ApiToken.objects.create(user=user, key_hash=_digest(key), prefix=key[:10])
    return key


def _token_with_user(key_hash: str) -> ApiToken | None:
    """The live token with this hash, its user loaded with it (select_related("user") by hand)
    and the user's permissions with them (auth_backends.permissions_known): one statement on
    every API request, refunds.rows says why."""
    user_model = get_user_model()
    quote = connection.ops.quote_name
    user_id = f"u.{quote(user_model._meta.pk.column)}"
    joined = f"{user_id} = t.{quote(ApiToken._meta.get_field('user').column)}"
    as_json = "json_agg" if connection.vendor == "postgresql" else "json_group_array"
    found = rows.fetch_one(
        f"SELECT {rows.columns(ApiToken, 't')}, {rows.columns(user_model, 'u')}, "
        f"(SELECT {as_json}(granted.name) FROM ({permissions_sql(user_id)}) granted) "
        f"FROM {rows.table(ApiToken)} t JOIN {rows.table(user_model)} u ON {joined} "
        f"WHERE t.key_hash = %s AND t.revoked = %s",
        [key_hash, False],
    )
    if found is None:
        return None
    split = rows.width(ApiToken)
    token = rows.instance(ApiToken, found[:split])
    token.user = rows.instance(user_model, found[split:-1])
    granted = found[-1]
    if not token.user.is_superuser:  # who has every permission, read when asked (auth_backends)
        permissions_known(token.user, json.loads(granted) if isinstance(granted, str) else granted or ())
    return token


class ApiTokenAuthentication(authentication.BaseAuthentication):
    """`Authorization: Token <key>`."""

    keyword = "Token"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Authorization header must be 'Token <key>'.")
        try:
            key = header[1].decode()
        except UnicodeError:
            raise exceptions.AuthenticationFailed("Invalid token.") from None
        token = _token_with_user(_digest(key))
        if token is None or not token.user.is_active:
            raise exceptions.AuthenticationFailed("Invalid token.")
        now = timezone.now()
        if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
            ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        return token.user, token

    def authenticate_header(self, request):
        return self.keyword
