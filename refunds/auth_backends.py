"""Django's ModelBackend, with a user's permissions read in one statement instead of two.

Every API request checks a permission (filing a refund checks `add_refundrequest`), and Django's
backend reads the user's own permissions and their groups' in two queries. Here both come from
one query, written out by hand (refunds.rows says why); the result is cached on the user object
for the request, as Django caches it. An API request reads them in the token's own statement
(refunds.api.authentication), so it checks permissions without a statement of its own."""

from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import Group, Permission
from django.contrib.contenttypes.models import ContentType

from refunds import rows


def permissions_sql(user_id: str) -> str:
    """A statement naming the user's own permissions and their groups' ("app_label.codename", one
    a row), `user_id` the SQL for their id: "%s" (a parameter, given twice) or a column of an
    outer query (the API token's lookup reads the permissions in its own statement)."""
    user_model = get_user_model()
    own = user_model.user_permissions.through
    groups = user_model.groups.through
    granted = Group.permissions.through
    return (
        f"SELECT ct.app_label || '.' || p.codename AS name FROM {rows.table(Permission)} p "
        f"JOIN {rows.table(ContentType)} ct ON ct.id = p.content_type_id "
        f"WHERE p.id IN (SELECT permission_id FROM {rows.table(own)} WHERE {own._meta.get_field('user').column} = {user_id}) "
        f"OR p.id IN (SELECT gp.permission_id FROM {rows.table(granted)} gp "
        f"JOIN {rows.table(groups)} ug ON ug.group_id = gp.group_id "
        f"WHERE ug.{groups._meta.get_field('user').column} = {user_id})"
    )


def permissions_known(user_obj, names) -> None:
    """Give `user_obj` its permissions read elsewhere (the token's lookup), as
    get_all_permissions would cache them for the request."""
    user_obj._perm_cache = set(names)


class OneQueryModelBackend(ModelBackend):
    def get_all_permissions(self, user_obj, obj=None):
        if not user_obj.is_active or user_obj.is_anonymous or obj is not None:
            return set()
        if not hasattr(user_obj, "_perm_cache"):
            if user_obj.is_superuser:
                found = Permission.objects.values_list("content_type__app_label", "codename").order_by()
                user_obj._perm_cache = {f"{app_label}.{codename}" for app_label, codename in found}
            else:
                permissions_known(user_obj, (name for (name,) in rows.fetch_all(permissions_sql("%s"), [user_obj.pk] * 2)))
        return user_obj._perm_cache
