"""Sends tasks to the worker of tests/features_python.rs and prints what came back as JSON:
delay/get, a group, a task that retries twice, a countdown, and `inspect ping`."""
import json
import time

from celery import group

from celery_tasks import add, app, flaky

out = {}
deadline = time.monotonic() + 60
while True:  # wait for the worker to be up
    pong = app.control.inspect(timeout=1).ping()
    if pong or time.monotonic() > deadline:
        break
out['delay_get'] = add.delay(2, 3).get(timeout=30)
out['group'] = group(add.s(i, i) for i in range(5))().get(timeout=30)
out['retry'] = flaky.delay().get(timeout=30)
start = time.monotonic()
out['countdown'] = add.apply_async((1, 1), countdown=1).get(timeout=30)
out['countdown_waited'] = time.monotonic() - start
out['ping'] = app.control.inspect(timeout=3).ping()
print(json.dumps(out))
