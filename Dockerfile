# Two images from one file. The default (last) stage, `production`, installs requirements.txt
# and copies only the app: no devtools, bench or tests. `dev` (docker-compose.yml's demo)
# adds the dev requirements and devtools for the Stripe sandbox.
# The base is Debian 13 (glibc 2.41): pip installs hyperswitch-prism's official manylinux_2_39
# wheel as is. On an older glibc, bin/_env builds a compatible wheel (devtools/prism_wheel.py).
FROM python:3.11-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY requirements.txt requirements-dev.txt ./

FROM base AS dev
RUN pip install --no-cache-dir -r requirements-dev.txt
COPY . .
# Settings fail closed without secrets; collectstatic needs none of them, so placeholders do.
RUN DJANGO_SECRET_KEY=build STRIPE_SECRET_KEY=build STRIPE_WEBHOOK_SECRET=build \
    python manage.py collectstatic --noinput --verbosity 0
EXPOSE 8000
CMD ["gunicorn", "refundoffice.wsgi", "--bind", "0.0.0.0:8000", "--workers", "3"]

FROM base AS production
RUN pip install --no-cache-dir -r requirements.txt
COPY manage.py ./
COPY refundoffice/ refundoffice/
COPY refunds/ refunds/
COPY approvals/ approvals/
COPY templates/ templates/
RUN DJANGO_SECRET_KEY=build STRIPE_SECRET_KEY=build STRIPE_WEBHOOK_SECRET=build \
    python manage.py collectstatic --noinput --verbosity 0
EXPOSE 8000
CMD ["gunicorn", "refundoffice.wsgi", "--bind", "0.0.0.0:8000", "--workers", "3"]
