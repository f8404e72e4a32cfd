FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY requirements.txt requirements-dev.txt ./
# The dev requirements bring the Stripe sandbox for the compose demo; a production image
# installs requirements.txt only.
ARG REQUIREMENTS=requirements-dev.txt
RUN pip install --no-cache-dir -r ${REQUIREMENTS}
COPY . .
RUN DJANGO_SECRET_KEY=build python manage.py collectstatic --noinput --verbosity 0
EXPOSE 8000
CMD ["gunicorn", "refundoffice.wsgi", "--bind", "0.0.0.0:8000", "--workers", "3"]
