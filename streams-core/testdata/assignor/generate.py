#!/usr/bin/env python3
"""Writes groups.jsonl: seeded random groups (instances, their threads and lags, tasks, settings) for
the task assignor's check against Kafka Streams' own (tests/differential/README.md, "The task
assignor"), then the groups of hard.jsonl: found among 20,000 larger random groups and by a review,
each one where a detail of Java's collections decides the answer (a priority queue holding an
instance under a load it no longer has; the order a HashSet puts passed-over instances back in)."""
import json
import random
import sys

rng = random.Random(20261207)
groups = []
# The first 1,000 groups without client tags, then rack-aware ones (the first 1,000 stay as they were).
for _ in range(int(sys.argv[1]) if len(sys.argv) > 1 else 1500):
    subtopologies = rng.randint(1, 3)
    all_tasks = [f"{s}_{p}" for s in range(subtopologies) for p in range(rng.randint(1, 8))]
    stateful_subs = {s for s in range(subtopologies) if rng.random() < 0.7}
    stateful = [t for t in all_tasks if int(t.split("_")[0]) in stateful_subs]
    # Process ids are UUIDs: small ones, and any 128 bits (Java orders each half as a signed number).
    size = rng.choice([rng.randint(1, 6), rng.randint(1, 6), rng.randint(7, 20)])
    if rng.random() < 0.5:
        ids = [f"{i:032x}" for i in rng.sample(range(1, 1000), size)]
    else:
        ids = list(dict.fromkeys(f"{rng.getrandbits(128):032x}" for _ in range(size)))
    running = {t: rng.choice(ids + [None]) for t in stateful}
    rack_aware = len(groups) >= 1000 and rng.random() < 0.8
    clients = []
    for i in ids:
        lags = {}
        for t in stateful:
            if running[t] == i:
                lags[t] = -2
            else:
                r = rng.random()
                lags[t] = -3 if r < 0.03 else rng.randint(0, 2000) if r < 0.6 else 10_000
        client = {"id": i, "capacity": rng.randint(1, 4), "lags": lags}
        if rack_aware:
            # Zones and clusters, now and then another tag or a missing one.
            tags = {"zone": rng.choice("abc"), "cluster": rng.choice(["k1", "k2"])}
            if rng.random() < 0.1:
                tags["other"] = rng.choice(["x", "y"])
            if rng.random() < 0.05:
                del tags[rng.choice(["zone", "cluster"])]
            client["tags"] = tags
        clients.append(client)
    group = {
        "acceptable_recovery_lag": rng.choice([0, 100, 1000, 9223372036854775807]),
        "max_warmup_replicas": rng.randint(1, 3),
        "num_standby_replicas": rng.randint(0, 2),
        "all": all_tasks,
        "stateful": stateful,
        "clients": clients,
    }
    if rack_aware:
        group["rack_aware_assignment_tags"] = rng.choice([["zone"], ["zone", "cluster"], ["cluster", "zone"]])
    groups.append(group)
with open(sys.argv[2] if len(sys.argv) > 2 else "groups.jsonl", "w") as f:
    for g in groups:
        f.write(json.dumps(g, separators=(",", ":")) + "\n")
    with open("hard.jsonl") as hard:
        f.write(hard.read())
