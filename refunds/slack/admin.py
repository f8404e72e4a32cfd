"""Slack links in the admin: read-only; deleting one unlinks the Slack user (they can link again
only through Slack's sign-in link)."""

from django.contrib import admin

from refunds.models import SlackIdentity


@admin.register(SlackIdentity)
class SlackIdentityAdmin(admin.ModelAdmin):
    list_display = ("slack_user_id", "user", "team_id", "linked_at", "second_factor_at")
    fields = list_display
    readonly_fields = list_display
    search_fields = ("=slack_user_id", "user__username")
    list_select_related = ("user",)
    show_full_result_count = False

    def has_add_permission(self, request):
        return False  # only the person links, through Slack's sign-in link

    def has_change_permission(self, request, obj=None):
        return False
