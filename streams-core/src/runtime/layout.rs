//! The topic layout in force, and how a running application picks up the topics its source patterns
//! come to match, as Kafka Streams does at its consumers' metadata refresh.
//!
//! Every `metadata.max.age.ms` (a consumer setting, Kafka's default 5 minutes) one stream thread of
//! the instance lists the cluster's topics again and redoes the start's checks with what the patterns
//! match now (co-partitioning, internal topics created and sized). A new layout gets a new
//! generation, and each thread joins the group again with the new subscription.
//!
//! Members of one group must subscribe to the same topics: the range assignment gives partition `p` of
//! every topic of a sub-topology to one member only when every member reads all of them, and task
//! `x_p` lives where those partitions go. Instances look at different times, so a thread also looks at
//! every assignment, and one that finds its subscription behind takes no task from that assignment
//! and joins again at once: no task runs on two instances, each with half of its partitions.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::topics::{self, TopicLayout};
use crate::client::StreamsAdmin;
use crate::config::StreamsConfig;
use crate::sync::LockUnpoisoned;
use crate::topology::plan::TopologyPlan;
use crate::{StreamsError, Topology};

/// The instance's topic layout, shared by its stream threads.
pub(crate) struct Layouts {
    current: Mutex<Arc<TopicLayout>>,
    generation: AtomicU64,
    /// `None` for a topology without source patterns: its layout never changes.
    watch: Option<Watch>,
}

/// What a look needs.
struct Watch {
    topology: Arc<Topology>,
    plan: Arc<TopologyPlan>,
    config: StreamsConfig,
    admin: Arc<Mutex<Box<dyn StreamsAdmin>>>,
    interval_ms: i64,
    /// When the next periodic look is due; `i64::MIN` until the first step sets it.
    next_ms: AtomicI64,
    /// One look at a time.
    looking: Mutex<()>,
}

impl Layouts {
    /// The layout `topics::prepare` gave at start.
    pub(crate) fn new(
        layout: TopicLayout,
        (topology, plan): (Arc<Topology>, Arc<TopologyPlan>),
        config: &StreamsConfig,
        admin: Arc<Mutex<Box<dyn StreamsAdmin>>>,
    ) -> Self {
        let patterns = plan.subtopologies.iter().any(|s| !s.source_patterns.is_empty());
        let watch = patterns.then(|| Watch {
            topology,
            plan,
            config: config.clone(),
            admin,
            interval_ms: config.metadata_max_age().as_millis() as i64,
            next_ms: AtomicI64::new(i64::MIN),
            looking: Mutex::new(()),
        });
        Layouts { current: Mutex::new(Arc::new(layout)), generation: AtomicU64::new(0), watch }
    }

    /// The layout in force and its generation.
    pub(crate) fn current(&self) -> (u64, Arc<TopicLayout>) {
        let layout = self.current.lock_unpoisoned();
        (self.generation.load(Ordering::SeqCst), layout.clone())
    }

    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Whether the layout can change (the topology has source patterns).
    pub(crate) fn watched(&self) -> bool {
        self.watch.is_some()
    }

    /// Looks when `metadata.max.age.ms` has passed since the last periodic look; the first call only
    /// starts the count.
    pub(crate) fn look_if_due(&self, now_ms: i64) {
        let Some(watch) = &self.watch else { return };
        let next = watch.next_ms.load(Ordering::SeqCst);
        if next == i64::MIN {
            let _ =
                watch.next_ms.compare_exchange(next, now_ms + watch.interval_ms, Ordering::SeqCst, Ordering::SeqCst);
            return;
        }
        // One thread of the instance looks; the others see the new generation.
        if now_ms >= next
            && watch
                .next_ms
                .compare_exchange(next, now_ms + watch.interval_ms, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
        {
            self.look();
        }
    }

    /// Lists the topics now and moves to a new generation when the patterns match topics the layout
    /// does not have. A look that fails (a broker away, a new topic that is not co-partitioned with
    /// the others of its sub-topology) is logged and keeps the layout as it is; the next look tries
    /// again. A topic deleted since stays in the layout until the application restarts.
    pub(crate) fn look(&self) {
        let Some(watch) = &self.watch else { return };
        let _one = watch.looking.lock_unpoisoned();
        let prepared = {
            let admin = watch.admin.lock_unpoisoned();
            topics::prepare_once(&watch.topology, &watch.plan, &watch.config, &**admin)
        };
        let mut layout = match prepared {
            Ok(layout) => layout,
            Err(StreamsError::Client(error)) => {
                tracing::warn!(target: "kstreams::runtime", %error,
                    "cannot look for topics the source patterns match; trying again after metadata.max.age.ms");
                return;
            }
            Err(error) => {
                tracing::error!(target: "kstreams::runtime", error = %crate::handler::error_chain(&error),
                    "the topics the source patterns match now cannot be read; reading those found before");
                return;
            }
        };
        let mut current = self.current.lock_unpoisoned();
        for (topic, &subtopology) in &current.reader {
            if !layout.reader.contains_key(topic) {
                tracing::warn!(target: "kstreams::runtime", topic = %topic,
                    "a source topic is gone; it stays in the subscription until the application restarts");
                layout.reader.insert(topic.clone(), subtopology);
            }
        }
        layout.repartition.extend(current.repartition.iter().cloned());
        if layout.reader == current.reader {
            return;
        }
        for (topic, subtopology) in layout.reader.iter().filter(|(t, _)| !current.reader.contains_key(*t)) {
            tracing::info!(target: "kstreams::runtime", topic = %topic, subtopology,
                "a source pattern matches a new topic; joining the group again to read it");
        }
        *current = Arc::new(layout);
        self.generation.fetch_add(1, Ordering::SeqCst);
    }
}
