package kstreams.bench;

import java.io.PrintStream;
import java.time.Duration;
import java.util.Collection;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;

import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.apache.kafka.common.serialization.IntegerDeserializer;
import org.apache.kafka.common.serialization.IntegerSerializer;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.KStream;
import org.apache.kafka.streams.kstream.ValueJoiner;
import org.apache.kafka.streams.kstream.StreamJoined;
import org.apache.kafka.streams.kstream.JoinWindows;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.processor.api.Processor;
import org.apache.kafka.streams.processor.api.ProcessorContext;
import org.apache.kafka.streams.processor.api.Record;
import org.apache.kafka.streams.kstream.TimeWindows;
import org.apache.kafka.streams.kstream.Windowed;
import org.apache.kafka.streams.state.KeyValueIterator;
import org.apache.kafka.streams.state.KeyValueStore;
import org.apache.kafka.streams.state.WindowStore;
import org.apache.kafka.streams.state.Stores;

/**
 * The Apache Kafka Streams peer of kstreams' comparison bench (benches/kafka_throughput.rs): runs one of
 * Kafka's SimpleBenchmark workloads on the loaded topic and reports on stdout, for the parent to time:
 *
 * <ul>
 *   <li>{@code ASSIGNED} once the app has its partitions (the first RUNNING; the plain clients' first
 *       assignment);</li>
 *   <li>{@code DONE} once it has seen every input record (workloads without a sink: the parent watches the
 *       sink topic of the others).</li>
 * </ul>
 *
 * <p>Usage: {@code Peer <workload> <bootstrap> <input topic> <output topic> <expected records> <state dir>}.
 * The parent measures CPU and peak RSS from /proc and kills this process when done.
 */
public final class Peer {
    private static final PrintStream OUT = System.out;
    private static final String STORE = "store";

    private Peer() {}

    public static void main(final String[] args) throws Exception {
        if (args.length != 6) {
            System.err.println("usage: Peer <workload> <bootstrap> <input> <output> <expected> <state dir>");
            System.exit(2);
        }
        final String workload = args[0];
        final String bootstrap = args[1];
        final String input = args[2];
        final String output = args[3];
        final long expected = Long.parseLong(args[4]);
        final String stateDir = args[5];
        switch (workload) {
            case "consume", "consumeproduce" -> clients(workload, bootstrap, input, output, expected);
            default -> streams(workload, bootstrap, input, output, expected, stateDir);
        }
    }

    /** The parent's run id (it deletes the topics named after it), or a fresh one when run by hand. */
    private static String appId(final String prefix) {
        final String id = System.getenv("KSTREAMS_BENCH_APP_ID");
        return id != null ? id : prefix + System.nanoTime();
    }

    private static void say(final String line) {
        synchronized (OUT) {
            OUT.println(line);
            OUT.flush();
        }
    }

    /** Counts records and says DONE at the expected count (SimpleBenchmark's CountDownAction). */
    private static final class Counter {
        private final AtomicLong seen = new AtomicLong();
        private final long expected;

        Counter(final long expected) {
            this.expected = expected;
        }

        void record() {
            if (seen.incrementAndGet() == expected) {
                say("DONE");
            }
        }
    }

    /** The plain Java clients: the ceilings. */
    private static void clients(final String workload, final String bootstrap, final String input,
                                final String output, final long expected) {
        final Properties c = new Properties();
        c.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        c.put(ConsumerConfig.GROUP_ID_CONFIG, appId("bench-java-"));
        c.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        c.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        c.put(ConsumerConfig.MAX_POLL_RECORDS_CONFIG, "1000");
        final boolean produce = workload.equals("consumeproduce");
        final Counter counter = new Counter(expected);
        try (KafkaConsumer<Integer, byte[]> consumer =
                 new KafkaConsumer<>(c, new IntegerDeserializer(), new ByteArrayDeserializer());
             KafkaProducer<Integer, byte[]> producer = produce ? producer(bootstrap) : null) {
            final AtomicBoolean assigned = new AtomicBoolean();
            consumer.subscribe(List.of(input), new ConsumerRebalanceListener() {
                @Override
                public void onPartitionsRevoked(final Collection<TopicPartition> partitions) {}

                @Override
                public void onPartitionsAssigned(final Collection<TopicPartition> partitions) {
                    if (!partitions.isEmpty() && assigned.compareAndSet(false, true)) {
                        say("ASSIGNED");
                    }
                }
            });
            while (true) {
                for (final ConsumerRecord<Integer, byte[]> r : consumer.poll(Duration.ofMillis(100))) {
                    if (producer != null) {
                        producer.send(new ProducerRecord<>(output, r.key(), r.value()));
                    }
                    counter.record();
                }
                if (producer != null && counter.seen.get() >= expected) {
                    producer.flush();
                }
            }
        }
    }

    private static KafkaProducer<Integer, byte[]> producer(final String bootstrap) {
        final Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        return new KafkaProducer<>(p, new IntegerSerializer(), new ByteArraySerializer());
    }

    /** SimpleBenchmark's topologies. */
    private static void streams(final String workload, final String bootstrap, final String input,
                                final String output, final long expected, final String stateDir)
            throws InterruptedException {
        final Counter counter = new Counter(expected);
        final StreamsBuilder builder = new StreamsBuilder();
        final Consumed<Integer, byte[]> consumed = Consumed.with(Serdes.Integer(), Serdes.ByteArray());
        final String second = input + "-2";
        // SimpleBenchmark's joiner: the left value, the right one where there is no left.
        final ValueJoiner<byte[], byte[], byte[]> joiner = (a, b) -> a != null ? a : b;
        if (workload.endsWith("join")) {
            switch (workload) {
                case "streamtablejoin" -> builder.stream(input, consumed)
                    .leftJoin(builder.table(second, consumed), joiner)
                    .peek((k, v) -> counter.record());
                case "streamstreamjoin" -> builder.stream(input, consumed)
                    .leftJoin(builder.stream(second, consumed), joiner,
                        JoinWindows.ofTimeDifferenceWithNoGrace(Duration.ofMillis(10_000)),
                        StreamJoined.with(Serdes.Integer(), Serdes.ByteArray(), Serdes.ByteArray()))
                    .peek((k, v) -> counter.record());
                default -> builder.table(input, consumed)
                    .leftJoin(builder.table(second, consumed), joiner)
                    .toStream()
                    .peek((k, v) -> counter.record());
            }
        }
        final KStream<Integer, byte[]> source =
            workload.endsWith("join") ? null : builder.stream(input, consumed);
        switch (workload) {
            case "streamtablejoin", "streamstreamjoin", "tabletablejoin" -> { }
            case "streamprocess" -> source.peek((k, v) -> counter.record());
            case "streamprocesswithsink" ->
                source.peek((k, v) -> counter.record()).to(output, Produced.with(Serdes.Integer(), Serdes.ByteArray()));
            case "streamprocesswithstatestore" -> {
                builder.addStateStore(Stores.keyValueStoreBuilder(
                        Stores.persistentKeyValueStore(STORE), Serdes.Integer(), Serdes.ByteArray())
                    .withCachingEnabled());
                source.peek((k, v) -> counter.record()).process(StoreProcessor::new, STORE);
            }
            case "streamcount" -> source.peek((k, v) -> counter.record()).groupByKey().count();
            case "streamcountwindowed" -> source.peek((k, v) -> counter.record())
                .groupByKey()
                .windowedBy(TimeWindows.ofSizeWithNoGrace(Duration.ofMillis(1000)).advanceBy(Duration.ofMillis(500)))
                .count();
            case "streamprocesswithwindowstore" -> {
                builder.addStateStore(Stores.windowStoreBuilder(
                        Stores.persistentWindowStore(STORE, Duration.ofMillis(3000), Duration.ofMillis(1000), false),
                        Serdes.Integer(), Serdes.ByteArray())
                    .withCachingEnabled());
                source.peek((k, v) -> counter.record()).process(WindowStoreProcessor::new, STORE);
            }
            default -> {
                System.err.println("unknown workload " + workload);
                System.exit(2);
            }
        }
        // SimpleBenchmark's settings; everything else at Kafka Streams' defaults (one stream thread,
        // the 10 MiB record cache, RocksDB stores).
        final Properties props = new Properties();
        props.put(StreamsConfig.APPLICATION_ID_CONFIG, appId("bench-kafka-streams-"));
        props.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(StreamsConfig.STATE_DIR_CONFIG, stateDir);
        props.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.AT_LEAST_ONCE);
        props.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, 30_000);
        props.put(ConsumerConfig.MAX_POLL_RECORDS_CONFIG, 1000);
        props.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        props.put(StreamsConfig.DEFAULT_KEY_SERDE_CLASS_CONFIG, Serdes.IntegerSerde.class);
        props.put(StreamsConfig.DEFAULT_VALUE_SERDE_CLASS_CONFIG, Serdes.ByteArraySerde.class);
        if (workload.equals("tabletablejoin")) {
            // Without the record cache the tables' updates reach the join as they come (kstreams does the same).
            props.put(StreamsConfig.STATESTORE_CACHE_MAX_BYTES_CONFIG, 0L);
        }
        final KafkaStreams streams = new KafkaStreams(builder.build(), props);
        final AtomicBoolean running = new AtomicBoolean();
        streams.setStateListener((next, previous) -> {
            if (next == KafkaStreams.State.RUNNING && running.compareAndSet(false, true)) {
                say("ASSIGNED");
            }
            if (next == KafkaStreams.State.ERROR) {
                System.err.println("Kafka Streams went to ERROR");
                System.exit(1);
            }
        });
        streams.start();
        // The parent kills this process once it has its figures.
        new CountDownLatch(1).await();
    }

    /** SimpleBenchmark's window-store processor: fetch keys within 10 over two seconds, then put. */
    private static final class WindowStoreProcessor implements Processor<Integer, byte[], Void, Void> {
        private WindowStore<Integer, byte[]> store;

        @Override
        public void init(final ProcessorContext<Void, Void> context) {
            store = context.getStateStore(STORE);
        }

        @Override
        public void process(final Record<Integer, byte[]> record) {
            final long t = record.timestamp();
            try (KeyValueIterator<Windowed<Integer>, byte[]> it =
                     store.fetch(record.key() - 10, record.key() + 10, t - 1000L, t + 1000L)) {
                while (it.hasNext()) {
                    it.next();
                }
            }
            store.put(record.key(), record.value(), t);
        }
    }

    /** SimpleBenchmark's state-store processor: get the key, then put the value. */
    private static final class StoreProcessor implements Processor<Integer, byte[], Void, Void> {
        private KeyValueStore<Integer, byte[]> store;

        @Override
        public void init(final ProcessorContext<Void, Void> context) {
            store = context.getStateStore(STORE);
        }

        @Override
        public void process(final Record<Integer, byte[]> record) {
            store.get(record.key());
            store.put(record.key(), record.value());
        }
    }
}
