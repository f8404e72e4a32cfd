"""The demo: users, payments at the local sandboxes, refunds and two months of history
(`manage.py seed_demo`, run by bin/run). Installed only with REFUNDOFFICE_DEV_DEFAULTS=1;
the production image carries no devtools."""
