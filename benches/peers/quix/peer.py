"""The Quix Streams peer of kstreams' comparison bench (benches/kafka_throughput.rs).

Runs one of Kafka's SimpleBenchmark workloads on the loaded topic with Quix Streams (Application and
StreamingDataFrame; the plain confluent-kafka clients it is built on for the ceilings) and reports on
stdout, for the parent to time:

- ``ASSIGNED`` once the consumer has its partitions (Quix's own assignment callback has run, so its
  state stores are open);
- ``DONE`` once it has seen every input record (workloads without a sink: the parent watches the sink
  topic of the others).

Usage: ``peer.py <workload> <bootstrap> <input topic> <output topic> <expected records> <state dir>``.
The parent measures CPU and peak RSS from /proc and kills this process when done. The venv with the
pinned quixstreams is made by scripts/bench-compare.sh.
"""

import os
import sys
import time


def app_id(prefix):
    """The parent's run id (it deletes the topics named after it), or a fresh one when run by hand."""
    return os.environ.get("KSTREAMS_BENCH_APP_ID") or f"{prefix}{time.time_ns()}"


def say(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


class Counter:
    """Counts records and says DONE at the expected count (SimpleBenchmark's CountDownAction)."""

    def __init__(self, expected):
        self.seen = 0
        self.expected = expected

    def record(self, *_):
        self.seen += 1
        if self.seen == self.expected:
            say("DONE")


def clients(workload, bootstrap, input_topic, output_topic, expected):
    """The plain confluent-kafka clients Quix Streams is built on: the Python ceilings."""
    from confluent_kafka import Consumer, Producer

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": app_id("bench-python-"),
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    producer = Producer({"bootstrap.servers": bootstrap}) if workload == "consumeproduce" else None
    assigned = []

    def on_assign(_consumer, partitions):
        if partitions and not assigned:
            assigned.append(True)
            say("ASSIGNED")

    consumer.subscribe([input_topic], on_assign=on_assign)
    counter = Counter(expected)
    while True:
        for message in consumer.consume(num_messages=1000, timeout=0.1):
            if message.error():
                raise RuntimeError(message.error())
            if producer is not None:
                while True:
                    try:
                        producer.produce(output_topic, message.value(), message.key())
                        break
                    except BufferError:
                        producer.poll(0.001)
            counter.record()
        if producer is not None:
            producer.poll(0)
            if counter.seen >= expected:
                producer.flush(1.0)


def quix(workload, bootstrap, input_topic, output_topic, expected, state_dir):
    from quixstreams import Application

    class TimedApplication(Application):
        """Says ASSIGNED after Quix's assignment callback (which opens the state stores) has run."""

        assigned = False

        def _on_assign(self, consumer, topic_partitions):
            super()._on_assign(consumer, topic_partitions)
            if topic_partitions and not TimedApplication.assigned:
                TimedApplication.assigned = True
                say("ASSIGNED")

    # State values are JSON by default, which has no bytes: the state-store workload keeps the value's
    # bytes as they are, as Kafka Streams' ByteArraySerde does (the count stays a JSON int).
    rocksdb_options = None
    if workload == "streamprocesswithstatestore":
        from quixstreams.state.rocksdb import RocksDBOptions

        rocksdb_options = RocksDBOptions(dumps=bytes, loads=bytes)
    # SimpleBenchmark's settings (commit every 30 s, from the earliest offset, at least once);
    # everything else at Quix's defaults (RocksDB state with changelog topics).
    app = TimedApplication(
        rocksdb_options=rocksdb_options,
        broker_address=bootstrap,
        consumer_group=app_id("bench-quix-"),
        auto_offset_reset="earliest",
        commit_interval=30.0,
        processing_guarantee="at-least-once",
        state_dir=state_dir,
        loglevel="WARNING",
    )
    source = app.topic(input_topic, key_deserializer="integer", value_deserializer="bytes")
    sdf = app.dataframe(source)
    counter = Counter(expected)

    if workload == "streamprocess":
        sdf = sdf.update(counter.record)
    elif workload == "streamprocesswithsink":
        sink = app.topic(output_topic, key_serializer="integer", value_serializer="bytes")
        sdf = sdf.update(counter.record).to_topic(sink)
    elif workload == "streamprocesswithstatestore":

        def get_then_put(value, state):
            state.get(b"value")
            state.set(b"value", value)
            counter.record()

        sdf = sdf.update(get_then_put, stateful=True)
    elif workload == "streamcount":

        def count(_value, state):
            state.set("count", state.get("count", 0) + 1)
            counter.record()

        sdf = sdf.update(count, stateful=True)
    elif workload == "streamcountwindowed":
        # Hopping windows of 1 s advancing by 500 ms, by record time, as SimpleBenchmark's.
        sdf = sdf.update(counter.record).hopping_window(duration_ms=1000, step_ms=500).count().current()
    else:
        raise SystemExit(f"unknown workload {workload}")
    app.run()


def main():
    if len(sys.argv) != 7:
        raise SystemExit("usage: peer.py <workload> <bootstrap> <input> <output> <expected> <state dir>")
    workload, bootstrap, input_topic, output_topic, expected, state_dir = sys.argv[1:]
    if workload in ("consume", "consumeproduce"):
        clients(workload, bootstrap, input_topic, output_topic, int(expected))
    else:
        quix(workload, bootstrap, input_topic, output_topic, int(expected), state_dir)


if __name__ == "__main__":
    main()
