"""The Celery app for worker, beat and Flower processes.

Settings come from the environment (``BROKER_URL``, ``DATABASE_URL``...). Creating the app
connects nothing: the broker is reached when the worker starts, the database at the
first task (and anew in each forked pool process, see ``idp_sync.tasks``).
"""

from idp_sync.tasks import create_celery_app
from workers import config

app = create_celery_app()
app.conf.update(config.WORKER_CONFIG)
