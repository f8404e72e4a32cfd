from django.apps import AppConfig
from django.core.signals import setting_changed
from django.db.models.signals import post_migrate


class RefundsConfig(AppConfig):
    name = "refunds"
    verbose_name = "Refunds"

    def ready(self):
        from refunds import checks, receivers  # noqa: F401 - registers the checks, connects the receivers
        # Registers the Celery tasks in every process, not only in workers: refunds.publish finds
        # them by name, and a web process that never imported them could publish nothing.
        from refunds import tasks  # noqa: F401
        from refunds.reason_codes import ensure_reason_codes
        from refunds.roles import ensure_role_groups
        from refunds.providers import providers_forget  # adapters kept per process: rebuilt on setting_changed

        post_migrate.connect(ensure_role_groups, dispatch_uid="refunds.ensure_role_groups")
        # post_migrate is sent once all migrations ran; the codes need only this app's tables.
        post_migrate.connect(ensure_reason_codes, sender=self, dispatch_uid="refunds.ensure_reason_codes")
        setting_changed.connect(providers_forget, dispatch_uid="refunds.providers_forget")
