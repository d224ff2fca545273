//! A fault-injecting TCP proxy between the instances and the broker, for the network faults.
//!
//! The broker's PROXIED listener (`scripts/kafka.sh proxied`) advertises the proxy's address, so an
//! instance bootstrapped there keeps talking through the proxy after it reads the metadata. The proxy
//! tells the instances' connections apart by the `client.id` of the first request on each connection
//! (every request header carries it; the driver gives each instance `instance-<id>`), so one instance
//! can be cut off while the others work on.
//!
//! Written here rather than taken from toxiproxy: the driver flips faults on and off in the middle of
//! its own schedule, per instance, and a proxy in its own process would need a control API, a Go build
//! in CI and an extra process to start and stop, for a hundred lines of forwarding.
//!
//! Faults: latency (every chunk in either direction waits), a cut (every open connection of an
//! instance closed at once, as a broker's or a NAT's reset would), and a partition (an instance's
//! connections go silent both ways, new ones included, as if its packets were dropped; when it heals
//! the connections opened meanwhile are cut, as the kernel would have given up on them).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;

/// Which connections a fault applies to: every instance's, or one's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Target {
    All,
    Instance(u32),
}

#[derive(Default)]
struct Faults {
    latency: BTreeMap<Target, Duration>,
    partitioned: Vec<u32>,
}

#[derive(Default)]
struct Shared {
    faults: Mutex<Faults>,
    /// Every open connection: its instance (if its client id named one) and a handle to close it by.
    connections: Mutex<Vec<(Option<u32>, TcpStream)>>,
    stopped: AtomicBool,
}

impl Shared {
    fn latency(&self, instance: Option<u32>) -> Duration {
        let faults = self.faults.lock().unwrap();
        let one = instance.and_then(|i| faults.latency.get(&Target::Instance(i)).copied());
        one.or_else(|| faults.latency.get(&Target::All).copied()).unwrap_or_default()
    }

    fn partitioned(&self, instance: Option<u32>) -> bool {
        instance.is_some_and(|i| self.faults.lock().unwrap().partitioned.contains(&i))
    }
}

/// The running proxy; dropping it stops accepting (open connections end with their peers).
pub(crate) struct Proxy {
    shared: Arc<Shared>,
    listen: SocketAddr,
}

impl Proxy {
    /// Listens on `listen` and forwards every connection to `upstream`.
    pub(crate) fn start(listen: SocketAddr, upstream: SocketAddr) -> anyhow::Result<Proxy> {
        let listener =
            TcpListener::bind(listen).with_context(|| format!("the network fault proxy binding {listen}"))?;
        let shared = Arc::new(Shared::default());
        let accepting = shared.clone();
        std::thread::Builder::new().name("proxy-accept".into()).spawn(move || {
            for client in listener.incoming() {
                if accepting.stopped.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(client) = client else { continue };
                let shared = accepting.clone();
                std::thread::spawn(move || {
                    let _ = connect(client, upstream, &shared);
                });
            }
        })?;
        Ok(Proxy { shared, listen })
    }

    /// Where the proxy listens: the instances' bootstrap address.
    pub(crate) fn address(&self) -> SocketAddr {
        self.listen
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
        connections.retain(|(instance, stream)| {
            let hit = target == Target::All || instance.is_some_and(|i| target == Target::Instance(i));
            if hit {
                let _ = stream.shutdown(Shutdown::Both);
                cut += 1;
            }
            !hit
        });
        cut
    }

    /// Silences `instance`'s connections both ways (`on`), or heals the partition and cuts them.
    pub(crate) fn partition(&self, instance: u32, on: bool) {
        {
            let mut faults = self.shared.faults.lock().unwrap();
            faults.partitioned.retain(|&i| i != instance);
            if on {
                faults.partitioned.push(instance);
            }
        }
        if !on {
            self.cut(Target::Instance(instance));
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stopped.store(true, Ordering::SeqCst);
        // Wakes the accepting thread so that it sees the flag.
        let _ = TcpStream::connect(self.listen);
        self.cut(Target::All);
    }
}

/// Forwards one client connection: reads its first request to learn whose it is, then pumps both ways.
fn connect(mut client: TcpStream, upstream: SocketAddr, shared: &Arc<Shared>) -> std::io::Result<()> {
    client.set_nodelay(true)?;
    let first = read_first_request(&mut client)?;
    let instance = instance_of(&first);
    let server = TcpStream::connect(upstream)?;
    server.set_nodelay(true)?;
    {
        let mut connections = shared.connections.lock().unwrap();
        connections.push((instance, client.try_clone()?));
        connections.push((instance, server.try_clone()?));
    }
    let (client_in, server_out) = (client.try_clone()?, server.try_clone()?);
    let up = shared.clone();
    std::thread::spawn(move || pump(client_in, server_out, first, instance, &up));
    pump(server, client, Vec::new(), instance, shared);
    Ok(())
}

/// Copies `from` to `to` (after `pending`), holding the bytes while the instance is partitioned and
/// delaying each chunk by the latency in force. Ends when either side closes.
fn pump(mut from: TcpStream, mut to: TcpStream, pending: Vec<u8>, instance: Option<u32>, shared: &Shared) {
    let mut held = pending;
    let mut buf = vec![0u8; 64 << 10];
    // A short read timeout, so that held bytes go out soon after a partition heals.
    let _ = from.set_read_timeout(Some(Duration::from_millis(50)));
    loop {
        if !held.is_empty() && !shared.partitioned(instance) {
            let latency = shared.latency(instance);
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
}
