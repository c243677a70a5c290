#!/usr/bin/python3
"""Kombu's py-amqp transport on bench_amqp's workload: the anchor for kelp.

One step per run, against the rabbitmq-server bench_amqp was given:

  publish          Producer.publish of M JSON bodies of 100 bytes (transient,
                   default exchange, routing key = queue name), no confirms
  publish_confirm  the same with transport_options confirm_publish=True
                   (py-amqp waits for each confirm: a window of 1, since
                   Kombu has no confirm window)
  consume          Consumer(prefetch_count=100) + drain_events until the M
                   messages of a publish step were consumed, each acked

and prints one machine-readable line:

    kombu_result step=publish messages=20000 wall_ns=... cpu_ns=... kombu=5.2.4 python=3.11.2

Every consumed message must arrive exactly once (checked by its sequence
number) and the queue must then be empty; the script exits nonzero otherwise.
"""

import argparse
import sys
import time

from kombu import Connection, Consumer, Exchange, Producer, Queue

BODY_SIZE = 100
PREFETCH = 100


def make_body(seq):
    # The same text bench_amqp publishes (JsonBody in main.cpp).
    head = '{"seq": %d, "task": "bench.process", "args": [1, 2, 3], "pad": "' % seq
    return head + 'x' * (BODY_SIZE - len(head) - 2) + '"}'


def bench_queue(name):
    # As bench_amqp declares it: transient, not auto-deleted.
    return Queue(name, Exchange(''), routing_key=name, durable=False)


def queue_depth(conn, name):
    return conn.default_channel.queue_declare(queue=name, passive=True).message_count


def publish(url, name, messages, confirm):
    options = {'confirm_publish': True} if confirm else {}
    with Connection(url, transport_options=options) as conn:
        queue = bench_queue(name)
        queue(conn.default_channel).declare()
        producer = Producer(conn.default_channel, routing_key=name)
        bodies = [make_body(seq) for seq in range(messages)]
        wall0, cpu0 = time.monotonic_ns(), time.process_time_ns()
        for body in bodies:
            producer.publish(body, routing_key=name, content_type='application/json',
                             content_encoding='utf-8', delivery_mode=1)
        wall1, cpu1 = time.monotonic_ns(), time.process_time_ns()
        deadline = time.monotonic() + 30
        while queue_depth(conn, name) != messages and time.monotonic() < deadline:
            time.sleep(0.05)
        waiting = queue_depth(conn, name)
    errors = []
    if waiting != messages:
        errors.append('the queue holds %d messages after %d publishes' % (waiting, messages))
    return errors, wall1 - wall0, cpu1 - cpu0


def consume(url, name, messages):
    seen = bytearray(messages)
    errors = []
    state = {'count': 0}

    def on_body(body, message):
        seq = body.get('seq') if isinstance(body, dict) else None
        if not isinstance(seq, int) or not 0 <= seq < messages:
            errors.append('stray message %r' % (body,))
        elif seen[seq]:
            errors.append('message %d consumed twice' % seq)
        else:
            seen[seq] = 1
        state['count'] += 1
        message.ack()

    with Connection(url) as conn:
        queue = bench_queue(name)
        consumer = Consumer(conn.default_channel, [queue], callbacks=[on_body],
                            accept=['json'], prefetch_count=PREFETCH)
        consumer.consume()
        wall0, cpu0 = time.monotonic_ns(), time.process_time_ns()
        while state['count'] < messages and len(errors) < 10:
            conn.drain_events(timeout=30)
        wall1, cpu1 = time.monotonic_ns(), time.process_time_ns()
        consumer.cancel()
        left = queue_depth(conn, name)
        conn.default_channel.queue_delete(name)
    missing = messages - sum(seen)
    if missing:
        errors.append('%d messages never consumed' % missing)
    if left:
        errors.append('%d messages left in the queue' % left)
    return errors, wall1 - wall0, cpu1 - cpu0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--url', required=True)
    parser.add_argument('--queue', required=True)
    parser.add_argument('--step', choices=['publish', 'publish_confirm', 'consume'],
                        required=True)
    parser.add_argument('--messages', type=int, default=20000)
    args = parser.parse_args()
    if args.messages <= 0:
        parser.error('--messages must be positive')
    if args.step == 'consume':
        errors, wall, cpu = consume(args.url, args.queue, args.messages)
    else:
        errors, wall, cpu = publish(args.url, args.queue, args.messages,
                                    args.step == 'publish_confirm')
    if errors:
        for error in errors[:10]:
            print('kombu_amqp: ' + error, file=sys.stderr)
        return 1
    print('kombu_result step=%s messages=%d wall_ns=%d cpu_ns=%d kombu=%s python=%s' %
          (args.step, args.messages, wall, cpu, __import__('kombu').__version__,
           sys.version.split()[0]))
    return 0


if __name__ == '__main__':
    sys.exit(main())
