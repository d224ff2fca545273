//! A fault-injecting TCP proxy between the instances and the brokers, for the network faults.
//!
//! Each broker's PROXIED listener (`scripts/kafka.sh proxied`, `scripts/kafka.sh cluster proxied`)
//! advertises an address of the proxy, one per broker, so an instance bootstrapped there keeps talking
//! through the proxy after it reads the metadata, and the proxy knows which broker each connection
//! goes to. The proxy tells the instances' connections apart by the `client.id` of the first request on each connection
//! (every request header carries it; the driver gives each instance `instance-<id>`), so one instance
//! can be cut off while the others work on.
//!
//! Written here rather than taken from toxiproxy: the driver flips faults on and off in the middle of
//! its own schedule, per instance, and a proxy in its own process would need a control API, a Go build
//! in CI and an extra process to start and stop, for a hundred lines of forwarding.
//!
//! Faults: latency (every chunk in either direction waits), a cut (every open connection of an
//! instance closed at once, as a broker's or a NAT's reset would), and a partition (an instance's
//! connections, or every connection to one broker, go silent both ways, new ones included, as if the
//! packets were dropped; when it heals, its connections are cut, as the kernel would have given up on
//! them). A broker silenced this way still reaches the other brokers and the
//! controllers: it keeps leading its partitions while the instances cannot reach it.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;

/// Which connections a fault applies to: every one, an instance's, or those to one broker (its
/// place in the proxy's routes, from 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Target {
    All,
    Instance(u32),
    Broker(usize),
}

/// One proxied connection's ends: the instance whose client id it carried (if one did) and the
/// broker it goes to.
#[derive(Debug, Clone, Copy)]
struct Link {
    instance: Option<u32>,
    broker: usize,
}

impl Target {
    fn covers(self, link: Link) -> bool {
        match self {
            Target::All => true,
            Target::Instance(i) => link.instance == Some(i),
            Target::Broker(b) => link.broker == b,
        }
    }
}

#[derive(Default)]
struct Faults {
    latency: BTreeMap<Target, Duration>,
    partitioned: Vec<Target>,
}

#[derive(Default)]
struct Shared {
    faults: Mutex<Faults>,
    /// Every open connection: its ends and a handle to close it by.
    connections: Mutex<Vec<(Link, TcpStream)>>,
    stopped: AtomicBool,
}

impl Shared {
    /// The latency in force for `link`: its instance's, else its broker's, else every connection's.
    fn latency(&self, link: Link) -> Duration {
        let faults = self.faults.lock().unwrap();
        let narrowest = [link.instance.map(Target::Instance), Some(Target::Broker(link.broker)), Some(Target::All)];
        narrowest.into_iter().flatten().find_map(|t| faults.latency.get(&t).copied()).unwrap_or_default()
    }

    /// Whether `link` is silenced. A connection whose first request named no instance is silenced
    /// only by a partition of its broker or of every connection.
    fn partitioned(&self, link: Link) -> bool {
        self.faults.lock().unwrap().partitioned.iter().any(|t| t.covers(link))
    }
}

/// The running proxy; dropping it stops accepting (open connections end with their peers).
pub(crate) struct Proxy {
    shared: Arc<Shared>,
    listens: Vec<SocketAddr>,
}

impl Proxy {
    /// For each route, listens on its first address and forwards every connection to its second
    /// (a broker's PROXIED listener); the routes' order numbers the brokers for [`Target::Broker`].
    pub(crate) fn start(routes: &[(SocketAddr, SocketAddr)]) -> anyhow::Result<Proxy> {
        let shared = Arc::new(Shared::default());
        // Every address bound before any thread starts: a failed bind leaves no thread accepting.
        let listeners = routes
            .iter()
            .map(|&(listen, _)| {
                TcpListener::bind(listen).with_context(|| format!("the network fault proxy binding {listen}"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        for (broker, (listener, &(_, upstream))) in listeners.into_iter().zip(routes).enumerate() {
            let accepting = shared.clone();
            std::thread::Builder::new().name(format!("proxy-accept-{broker}")).spawn(move || {
                for client in listener.incoming() {
                    if accepting.stopped.load(Ordering::SeqCst) {
                        return;
                    }
                    let Ok(client) = client else { continue };
                    let shared = accepting.clone();
                    std::thread::spawn(move || {
                        let _ = connect(client, upstream, broker, &shared);
                    });
                }
            })?;
        }
        Ok(Proxy { shared, listens: routes.iter().map(|r| r.0).collect() })
    }

    /// Where the proxy listens: the instances' bootstrap addresses, comma-separated.
    pub(crate) fn bootstrap(&self) -> String {
        self.listens.iter().map(SocketAddr::to_string).collect::<Vec<_>>().join(",")
    }

    /// How many brokers the proxy fronts.
    pub(crate) fn brokers(&self) -> usize {
        self.listens.len()
    }

    /// Every chunk to or from `target` waits `latency` (zero: none).
    pub(crate) fn set_latency(&self, target: Target, latency: Duration) {
        let mut faults = self.shared.faults.lock().unwrap();
        if latency.is_zero() {
            faults.latency.remove(&target);
        } else {
            faults.latency.insert(target, latency);
        }
    }

    /// Closes every open connection of `target` at once; returns how many.
    pub(crate) fn cut(&self, target: Target) -> usize {
        let mut connections = self.shared.connections.lock().unwrap();
        let mut cut = 0;
        connections.retain(|(link, stream)| {
            let hit = target.covers(*link);
            if hit {
                let _ = stream.shutdown(Shutdown::Both);
                cut += 1;
            }
            !hit
        });
        cut
    }

    /// Silences `target`'s connections both ways (`on`), or heals the partition and cuts them.
    pub(crate) fn partition(&self, target: Target, on: bool) {
        {
            let mut faults = self.shared.faults.lock().unwrap();
            faults.partitioned.retain(|&t| t != target);
            if on {
                faults.partitioned.push(target);
            }
        }
        if !on {
            self.cut(target);
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stopped.store(true, Ordering::SeqCst);
        // Wakes the accepting threads so that they see the flag.
        for listen in &self.listens {
            let _ = TcpStream::connect(listen);
        }
        self.cut(Target::All);
    }
}

/// Forwards one client connection: reads its first request to learn whose it is, then pumps both ways.
fn connect(mut client: TcpStream, upstream: SocketAddr, broker: usize, shared: &Arc<Shared>) -> std::io::Result<()> {
    client.set_nodelay(true)?;
    let first = read_first_request(&mut client)?;
    let link = Link { instance: instance_of(&first), broker };
    let server = TcpStream::connect(upstream)?;
    server.set_nodelay(true)?;
    {
        let mut connections = shared.connections.lock().unwrap();
        connections.push((link, client.try_clone()?));
        connections.push((link, server.try_clone()?));
    }
    let (client_in, server_out) = (client.try_clone()?, server.try_clone()?);
    let up = shared.clone();
    std::thread::spawn(move || pump(client_in, server_out, first, link, &up));
    pump(server, client, Vec::new(), link, shared);
    Ok(())
}

/// Copies `from` to `to` (after `pending`), holding the bytes while the link is partitioned and
/// delaying each chunk by the latency in force. Ends when either side closes.
fn pump(mut from: TcpStream, mut to: TcpStream, pending: Vec<u8>, link: Link, shared: &Shared) {
    let mut held = pending;
    let mut buf = vec![0u8; 64 << 10];
    // A short read timeout, so that held bytes go out soon after a partition heals.
    let _ = from.set_read_timeout(Some(Duration::from_millis(50)));
    loop {
        if !held.is_empty() && !shared.partitioned(link) {
            let latency = shared.latency(link);
            if !latency.is_zero() {
                std::thread::sleep(latency);
            }
            if to.write_all(&held).is_err() {
                break;
            }
            held.clear();
        }
        match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => held.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => break,
        }
    }
    let _ = to.shutdown(Shutdown::Both);
    let _ = from.shutdown(Shutdown::Both);
}

/// The first request of a connection, whole: a 4-byte size, then that many bytes.
fn read_first_request(client: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut size = [0u8; 4];
    client.read_exact(&mut size)?;
    let len = i32::from_be_bytes(size);
    if !(0..=(100 << 20)).contains(&len) {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, format!("a request of {len} bytes")));
    }
    let mut request = size.to_vec();
    request.resize(4 + len as usize, 0);
    client.read_exact(&mut request[4..])?;
    Ok(request)
}

/// The instance a request comes from: its header's client id (after the api key, the version and the
/// correlation id, a 2-byte length and the id) contains `instance-<id>`.
fn instance_of(request: &[u8]) -> Option<u32> {
    let len = i16::from_be_bytes(request.get(12..14)?.try_into().ok()?);
    let id = std::str::from_utf8(request.get(14..14 + usize::try_from(len).ok()?)?).ok()?;
    let rest = &id[id.find("instance-")? + "instance-".len()..];
    rest[..rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len())].parse().ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_instance_is_read_from_the_client_id_of_the_request_header() {
        let id = b"12345-instance-7-StreamThread-1-consumer";
        let mut request = vec![0, 0, 0, 0, 0, 18, 0, 3, 0, 0, 0, 1];
        request.extend_from_slice(&(id.len() as i16).to_be_bytes());
        request.extend_from_slice(id);
        assert_eq!(super::instance_of(&request), Some(7));
        assert_eq!(super::instance_of(&request[..20]), None);
    }

    #[test]
    fn a_fault_covers_its_links_and_the_narrowest_latency_wins() {
        use super::{Link, Shared, Target};
        use std::time::Duration;
        let one = Link { instance: Some(1), broker: 0 };
        let other = Link { instance: Some(2), broker: 2 };
        let anonymous = Link { instance: None, broker: 2 };
        assert!(Target::All.covers(anonymous));
        assert!(Target::Instance(1).covers(one) && !Target::Instance(1).covers(other));
        assert!(!Target::Instance(1).covers(anonymous));
        assert!(Target::Broker(2).covers(other) && Target::Broker(2).covers(anonymous));
        assert!(!Target::Broker(2).covers(one));

        let shared = Shared::default();
        {
            let mut faults = shared.faults.lock().unwrap();
            faults.latency.insert(Target::All, Duration::from_millis(300));
            faults.latency.insert(Target::Broker(2), Duration::from_millis(20));
            faults.latency.insert(Target::Instance(2), Duration::from_millis(5));
            faults.partitioned.push(Target::Broker(0));
        }
        assert_eq!(shared.latency(one), Duration::from_millis(300));
        assert_eq!(shared.latency(anonymous), Duration::from_millis(20));
        assert_eq!(shared.latency(other), Duration::from_millis(5));
        assert!(shared.partitioned(one) && !shared.partitioned(other));
    }
}
