"""The Celery app of tests/features_python.rs: a stock Celery app on the pyamqp transport
(broker URL from CELERY_BROKER), default settings, the rpc:// result backend (direct
reply-to)."""
import os

from celery import Celery

app = Celery('warren_celery', broker=os.environ['CELERY_BROKER'], backend='rpc://')


@app.task
def add(x, y):
    return x + y


@app.task(bind=True, max_retries=3)
def flaky(self):
    if self.request.retries < 2:
        raise self.retry(countdown=0.2)
    return 'ok after %d retries' % self.request.retries
