"""Celery tasks for kelp's interop test: a real `celery worker` runs them.

The result backend is the Redis URL in $KELP_INTEROP_REDIS_URL (the test
redis-server, database interop_db); the broker is $KELP_INTEROP_BROKER_URL
(the test rabbitmq-server, amqp://) when set, else that same Redis:

    KELP_INTEROP_REDIS_URL=redis://127.0.0.1:6379/11 \\
        /usr/bin/python3 -m celery -A interop_tasks worker --pool=solo
"""
import os

from celery import Celery

redis_url = os.environ['KELP_INTEROP_REDIS_URL']
broker_url = os.environ.get('KELP_INTEROP_BROKER_URL') or redis_url
app = Celery('interop_tasks', broker=broker_url, backend=redis_url)
app.conf.update(task_serializer='json', result_serializer='json', accept_content=['json'])


@app.task(name='interop_tasks.add')
def add(x, y):
    return x + y


@app.task(name='interop_tasks.echo')
def echo(*args, **kwargs):
    """What the worker decoded from kelp's message, sent back as the result."""
    return {'args': list(args), 'kwargs': kwargs}
