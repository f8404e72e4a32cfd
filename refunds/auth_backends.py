"""Django's ModelBackend, with a user's permissions read in one statement instead of two.

Every API request checks a permission (filing a refund checks `add_refundrequest`), and Django's
backend reads the user's own permissions and their groups' in two queries. Here both come from
one query, written out by hand (refunds.rows says why); the result is cached on the user object
for the request, as Django caches it."""

from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import Group, Permission
from django.contrib.contenttypes.models import ContentType

from refunds import rows


def _permission_rows(user_id) -> list[tuple[str, str]]:
    """(app_label, codename) of the user's own permissions and their groups'."""
    user_model = get_user_model()
    own = user_model.user_permissions.through
    groups = user_model.groups.through
    granted = Group.permissions.through
    return rows.fetch_all(
        f"SELECT ct.app_label, p.codename FROM {rows.table(Permission)} p "
        f"JOIN {rows.table(ContentType)} ct ON ct.id = p.content_type_id "
        f"WHERE p.id IN (SELECT permission_id FROM {rows.table(own)} WHERE {own._meta.get_field('user').column} = %s) "
        f"OR p.id IN (SELECT gp.permission_id FROM {rows.table(granted)} gp "
        f"JOIN {rows.table(groups)} ug ON ug.group_id = gp.group_id "
        f"WHERE ug.{groups._meta.get_field('user').column} = %s)",
        [user_id, user_id],
    )


class OneQueryModelBackend(ModelBackend):
    def get_all_permissions(self, user_obj, obj=None):
        if not user_obj.is_active or user_obj.is_anonymous or obj is not None:
            return set()
        if not hasattr(user_obj, "_perm_cache"):
            if user_obj.is_superuser:
                found = Permission.objects.values_list("content_type__app_label", "codename").order_by()
            else:
                found = _permission_rows(user_obj.pk)
            user_obj._perm_cache = {f"{app_label}.{codename}" for app_label, codename in found}
        return user_obj._perm_cache
