//! Connections of the library's own to Kafka brokers, for what librdkafka does not let it do: take part
//! in the consumer group's classic protocol with its own task assignor (`kafka::group_member`). Blocking
//! request and answer on one socket (TCP, or TLS through OpenSSL), SASL PLAIN and SCRAM, the versions of
//! each request agreed with the broker (ApiVersions), messages encoded by the `kafka-protocol` crate. The
//! settings are librdkafka's names, read from the same `client.`/`consumer.` properties the rdkafka
//! consumer gets, so one configuration serves both.

mod sasl;
#[cfg(feature = "ssl")]
mod scram;
#[cfg(feature = "ssl")]
mod tls;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{encode_request_header_into_buffer, Decodable, HeaderVersion, Request, StrBytes};

use crate::client::{ClientError, ClientErrorKind, TopicPartition};
use crate::config::StreamsConfig;

/// The largest answer read: a group's JoinGroup answer with every member's subscription is the largest
/// this client asks for; anything far past it is not a Kafka answer.
const MAX_ANSWER_BYTES: usize = 64 << 20;

/// What went wrong on a connection; the setting, broker and request at fault are named.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WireError {
    #[error("cannot connect to {address}: {source}")]
    Connect { address: String, source: std::io::Error },
    #[error("connection to {address} failed during {api}: {source}")]
    Io { address: String, api: &'static str, source: std::io::Error },
    #[error("TLS with {address}: {message}")]
    #[cfg_attr(not(feature = "ssl"), allow(dead_code))]
    Tls { address: String, message: String },
    #[error("SASL {mechanism} authentication with {address} failed: {message}")]
    Authentication { address: String, mechanism: String, message: String },
    #[error(
        "{address} speaks no version of {api} this client speaks (the broker: {broker:?}, this client: \
         {ours:?}); the library's group member needs Kafka 2.5 or later"
    )]
    Unsupported { address: String, api: &'static str, broker: Option<(i16, i16)>, ours: (i16, i16) },
    #[error("{address} sent a malformed {api} answer: {message}")]
    Malformed { address: String, api: &'static str, message: String },
    #[error("setting `{setting}`: {message}")]
    Setting { setting: &'static str, message: String },
    #[error("{address} refused {api} for {what}: {}", kafka_protocol::ResponseError::try_from_code(*code).map_or("no error".to_string(), |e| format!("{e} ({code})")))]
    Refused { address: String, api: &'static str, what: String, code: i16 },
}

impl WireError {
    /// The runtime's reading of it: a broken or refused connection may work again; a setting, an
    /// authentication or a broker that speaks another protocol will not.
    pub(crate) fn into_client_error(self, operation: &str) -> ClientError {
        let kind = if self.is_retriable() { ClientErrorKind::Retriable } else { ClientErrorKind::Fatal };
        let code = match &self {
            WireError::Refused { code, .. } => Some(i32::from(*code)),
            _ => None,
        };
        let error = ClientError::new(operation, self.to_string(), kind);
        let error = match code {
            Some(code) => error.with_code(code),
            None => error,
        };
        error.with_source(self)
    }

    /// Whether trying again (another connection, a moved coordinator) may work.
    pub(crate) fn is_retriable(&self) -> bool {
        match self {
            WireError::Connect { .. } | WireError::Io { .. } => true,
            WireError::Refused { code, .. } => {
                kafka_protocol::ResponseError::try_from_code(*code).is_some_and(|e| e.is_retriable())
            }
            _ => false,
        }
    }
}

/// A consumer setting in milliseconds (`default` when unset); a value that is not one is an error
/// naming the setting.
pub(crate) fn consumer_millis(config: &StreamsConfig, name: &'static str, default: u64) -> Result<Duration, WireError> {
    config.consumer_millis(name, default).map_err(|message| WireError::Setting { setting: name, message })
}

/// How connections are made: librdkafka's settings, as the group member's consumer would get them.
#[derive(Debug, Clone)]
pub(crate) struct WireSettings {
    pub(crate) bootstrap: Vec<String>,
    pub(crate) client_id: String,
    /// `request.timeout.ms` (30 s): how long an answer may take, past what the request itself waits.
    pub(crate) request_timeout: Duration,
    /// `socket.connection.setup.timeout.ms` (30 s in librdkafka).
    pub(crate) connect_timeout: Duration,
    tls: Option<TlsSettings>,
    sasl: Option<sasl::SaslSettings>,
}

/// `ssl.*`: what the client trusts and shows.
#[derive(Debug, Clone, Default)]
#[cfg_attr(not(feature = "ssl"), allow(dead_code))]
struct TlsSettings {
    ca_location: Option<String>,
    certificate_location: Option<String>,
    key_location: Option<String>,
    key_password: Option<String>,
    keystore_location: Option<String>,
    keystore_password: Option<String>,
    verify_hostname: bool,
    verify_certificate: bool,
}

impl WireSettings {
    /// The settings of `config`'s consumers (`consumer.` over `client.` properties).
    pub(crate) fn from_config(config: &StreamsConfig, client_id: &str) -> Result<WireSettings, WireError> {
        let setting = |name: &str| config.consumer_setting(name).map(str::to_string);
        let millis = |name, default| consumer_millis(config, name, default);
        let protocol = setting("security.protocol").unwrap_or_else(|| "plaintext".into()).to_ascii_lowercase();
        let (tls, sasl) = match protocol.as_str() {
            "plaintext" => (false, false),
            "ssl" => (true, false),
            "sasl_plaintext" => (false, true),
            "sasl_ssl" => (true, true),
            other => {
                return Err(WireError::Setting {
                    setting: "security.protocol",
                    message: format!("`{other}` is none of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL"),
                });
            }
        };
        let tls = tls
            .then(|| -> Result<TlsSettings, WireError> {
                let on = |name: &'static str, default: bool| match setting(name).as_deref().map(str::trim) {
                    None => Ok(default),
                    Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
                    Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
                    Some(v) => {
                        Err(WireError::Setting { setting: name, message: format!("`{v}` is not true or false") })
                    }
                };
                let verify_hostname = match setting("ssl.endpoint.identification.algorithm").as_deref() {
                    None => true,
                    Some(v) if v.eq_ignore_ascii_case("https") => true,
                    Some(v) if v.eq_ignore_ascii_case("none") || v.is_empty() => false,
                    Some(v) => {
                        return Err(WireError::Setting {
                            setting: "ssl.endpoint.identification.algorithm",
                            message: format!("`{v}` is neither https nor none"),
                        });
                    }
                };
                Ok(TlsSettings {
                    ca_location: setting("ssl.ca.location"),
                    certificate_location: setting("ssl.certificate.location"),
                    key_location: setting("ssl.key.location"),
                    key_password: setting("ssl.key.password"),
                    keystore_location: setting("ssl.keystore.location"),
                    keystore_password: setting("ssl.keystore.password"),
                    verify_hostname,
                    verify_certificate: on("enable.ssl.certificate.verification", true)?,
                })
            })
            .transpose()?;
        #[cfg(not(feature = "ssl"))]
        if tls.is_some() {
            return Err(WireError::Setting {
                setting: "security.protocol",
                message: format!("`{protocol}` needs TLS: build kstreams with the `ssl` cargo feature"),
            });
        }
        let sasl = if sasl { Some(sasl::SaslSettings::from_settings(&setting)?) } else { None };
        Ok(WireSettings {
            bootstrap: config
                .bootstrap_servers
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect(),
            client_id: client_id.to_string(),
            request_timeout: millis("request.timeout.ms", 30_000)?,
            connect_timeout: millis("socket.connection.setup.timeout.ms", 30_000)?,
            tls,
            sasl,
        })
    }
}

/// A socket, plain or in TLS.
enum Stream {
    Plain(TcpStream),
    #[cfg(feature = "ssl")]
    Tls(Box<openssl::ssl::SslStream<TcpStream>>),
}

impl Stream {
    fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            #[cfg(feature = "ssl")]
            Stream::Tls(s) => s.get_ref(),
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            #[cfg(feature = "ssl")]
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            #[cfg(feature = "ssl")]
            Stream::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            #[cfg(feature = "ssl")]
            Stream::Tls(s) => s.flush(),
        }
    }
}

/// One authenticated connection to one broker. Requests go one at a time, each waiting for its answer.
pub(crate) struct Connection {
    stream: Stream,
    address: String,
    client_id: StrBytes,
    correlation_id: i32,
    request_timeout: Duration,
    /// The broker's version range of each API it has.
    versions: HashMap<i16, (i16, i16)>,
    /// When the broker ends the SASL session (KIP-368's `connections.max.reauth.ms`): the connection is
    /// replaced a little before, as re-authenticating in place would need to interleave with requests.
    reauthenticate_at: Option<std::time::Instant>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection").field("address", &self.address).finish_non_exhaustive()
    }
}

impl Connection {
    /// Connects to `address` (host:port), with TLS and SASL as `settings` say, and learns the broker's
    /// versions.
    pub(crate) fn open(address: &str, settings: &WireSettings) -> Result<Connection, WireError> {
        let connect_error = |source| WireError::Connect { address: address.to_string(), source };
        let addrs = address.to_socket_addrs().map_err(connect_error)?;
        let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, "the name resolves to no address");
        let mut tcp = None;
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, settings.connect_timeout) {
                Ok(s) => {
                    tcp = Some(s);
                    break;
                }
                Err(e) => last = e,
            }
        }
        let tcp = tcp.ok_or_else(|| connect_error(last))?;
        tcp.set_nodelay(true).map_err(connect_error)?;
        tcp.set_write_timeout(Some(settings.request_timeout)).map_err(connect_error)?;
        let stream = match &settings.tls {
            None => Stream::Plain(tcp),
            #[cfg(feature = "ssl")]
            Some(tls) => Stream::Tls(Box::new(tls::handshake(tcp, address, tls, settings.connect_timeout)?)),
            #[cfg(not(feature = "ssl"))]
            Some(_) => unreachable!("WireSettings refuses TLS without the ssl feature"),
        };
        let mut connection = Connection {
            stream,
            address: address.to_string(),
            client_id: StrBytes::from_string(settings.client_id.clone()),
            correlation_id: 0,
            request_timeout: settings.request_timeout,
            versions: HashMap::new(),
            reauthenticate_at: None,
        };
        connection.learn_versions()?;
        if let Some(sasl) = &settings.sasl {
            let lifetime = sasl::authenticate(&mut connection, sasl)?;
            connection.reauthenticate_at = lifetime.map(|l| std::time::Instant::now() + l.mul_f64(0.85));
        }
        Ok(connection)
    }

    /// Connects to the first of `settings`' bootstrap servers that answers.
    pub(crate) fn bootstrap(settings: &WireSettings) -> Result<Connection, WireError> {
        let mut last = None;
        for address in &settings.bootstrap {
            match Connection::open(address, settings) {
                Ok(c) => return Ok(c),
                // A refused login or setting is not cured by another broker.
                Err(e @ (WireError::Connect { .. } | WireError::Io { .. })) => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or(WireError::Setting { setting: "bootstrap.servers", message: "names no broker".into() }))
    }

    /// The broker this connection goes to.
    pub(crate) fn address(&self) -> &str {
        &self.address
    }

    /// Whether the broker is about to end this connection's SASL session: time to replace it.
    pub(crate) fn reauthentication_due(&self) -> bool {
        self.reauthenticate_at.is_some_and(|at| std::time::Instant::now() >= at)
    }

    /// A handle on the socket, to shut it from another thread (cutting a waiting request short).
    pub(crate) fn socket(&self) -> Option<TcpStream> {
        self.stream.tcp().try_clone().ok()
    }

    fn learn_versions(&mut self) -> Result<(), WireError> {
        let request = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("kstreams"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        // Version 3 (Kafka 2.4+): older brokers answer UNSUPPORTED_VERSION, and are refused below. The
        // member's requests need Kafka 2.5 (static membership in every request, OffsetFetch's
        // require_stable), which `send` checks request by request.
        let answer: ApiVersionsResponse = self.exchange(&request, 3, Duration::ZERO)?;
        if answer.error_code != 0 {
            return Err(WireError::Unsupported {
                address: self.address.clone(),
                api: "ApiVersions",
                broker: None,
                ours: (3, 3),
            });
        }
        self.versions = answer.api_keys.iter().map(|k| (k.api_key, (k.min_version, k.max_version))).collect();
        Ok(())
    }

    /// The version of `R` to use: the highest both sides speak, at most `highest`.
    fn version<R: Request>(&self, api: &'static str, lowest: i16, highest: i16) -> Result<i16, WireError> {
        let ours = (lowest.max(R::VERSIONS.min), highest.min(R::VERSIONS.max));
        let broker = self.versions.get(&R::KEY).copied();
        match broker {
            Some((min, max)) if min.max(ours.0) <= max.min(ours.1) => Ok(max.min(ours.1)),
            _ => Err(WireError::Unsupported { address: self.address.clone(), api, broker, ours }),
        }
    }

    /// Sends `request` in the highest version both sides speak within `lowest..=highest` and returns the
    /// answer with that version; `wait` is how long the broker may hold the request by design (a
    /// JoinGroup waits for the group to form), on top of `request.timeout.ms`.
    pub(crate) fn send<R: Request>(
        &mut self,
        request: &R,
        lowest: i16,
        highest: i16,
        wait: Duration,
    ) -> Result<(R::Response, i16), WireError> {
        let version = self.version::<R>(api_name(R::KEY), lowest, highest)?;
        Ok((self.exchange(request, version, wait)?, version))
    }

    fn exchange<R: Request>(&mut self, request: &R, version: i16, wait: Duration) -> Result<R::Response, WireError> {
        let api = api_name(R::KEY);
        self.correlation_id = self.correlation_id.wrapping_add(1);
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation_id)
            .with_client_id(Some(self.client_id.clone()));
        let malformed =
            |address: &str, message: String| WireError::Malformed { address: address.to_string(), api, message };
        let mut frame = BytesMut::new();
        frame.extend_from_slice(&[0; 4]);
        encode_request_header_into_buffer(&mut frame, &header)
            .and_then(|()| request.encode(&mut frame, version))
            .map_err(|e| WireError::Setting {
                setting: "(request)",
                message: format!("{api} cannot be encoded: {e}"),
            })?;
        let size = i32::try_from(frame.len() - 4).map_err(|_| malformed(&self.address, "request too large".into()))?;
        frame[..4].copy_from_slice(&size.to_be_bytes());

        let io = |address: &str, source| WireError::Io { address: address.to_string(), api, source };
        self.stream.write_all(&frame).and_then(|()| self.stream.flush()).map_err(|e| io(&self.address, e))?;
        self.stream.tcp().set_read_timeout(Some(self.request_timeout + wait)).map_err(|e| io(&self.address, e))?;
        let mut size = [0u8; 4];
        self.stream.read_exact(&mut size).map_err(|e| io(&self.address, e))?;
        let size = i32::from_be_bytes(size);
        let size = usize::try_from(size)
            .ok()
            .filter(|s| *s <= MAX_ANSWER_BYTES)
            .ok_or_else(|| malformed(&self.address, format!("an answer of {size} bytes")))?;
        let mut body = vec![0u8; size];
        self.stream.read_exact(&mut body).map_err(|e| io(&self.address, e))?;
        let mut body = bytes::Bytes::from(body);
        let header = ResponseHeader::decode(&mut body, R::Response::header_version(version))
            .map_err(|e| malformed(&self.address, format!("its header: {e}")))?;
        if header.correlation_id != self.correlation_id {
            return Err(malformed(
                &self.address,
                format!("correlation id {} for request {}", header.correlation_id, self.correlation_id),
            ));
        }
        let answer = R::Response::decode(&mut body, version).map_err(|e| malformed(&self.address, e.to_string()))?;
        if body.has_remaining() {
            return Err(malformed(&self.address, format!("{} bytes past its end", body.remaining())));
        }
        Ok(answer)
    }
}

/// A topic's name as Kafka's messages carry it.
pub(crate) fn topic_name(topic: &str) -> kafka_protocol::messages::TopicName {
    kafka_protocol::messages::TopicName(StrBytes::from_string(topic.to_string()))
}

/// `items` grouped under their partitions' topics, each topic where it first comes: Kafka's requests
/// and the consumer protocol carry partitions topic by topic.
pub(crate) fn by_topic<T>(
    items: impl IntoIterator<Item = (TopicPartition, T)>,
) -> Vec<(kafka_protocol::messages::TopicName, Vec<T>)> {
    let mut topics: Vec<(kafka_protocol::messages::TopicName, Vec<T>)> = Vec::new();
    for (tp, item) in items {
        match topics.iter_mut().find(|(name, _)| *name.0 == *tp.topic) {
            Some((_, list)) => list.push(item),
            None => topics.push((topic_name(&tp.topic), vec![item])),
        }
    }
    topics
}

/// The request's name as Kafka's documentation spells it.
fn api_name(key: i16) -> &'static str {
    match ApiKey::try_from(key) {
        Ok(ApiKey::ApiVersions) => "ApiVersions",
        Ok(ApiKey::SaslHandshake) => "SaslHandshake",
        Ok(ApiKey::SaslAuthenticate) => "SaslAuthenticate",
        Ok(ApiKey::FindCoordinator) => "FindCoordinator",
        Ok(ApiKey::JoinGroup) => "JoinGroup",
        Ok(ApiKey::SyncGroup) => "SyncGroup",
        Ok(ApiKey::Heartbeat) => "Heartbeat",
        Ok(ApiKey::LeaveGroup) => "LeaveGroup",
        Ok(ApiKey::OffsetCommit) => "OffsetCommit",
        Ok(ApiKey::OffsetFetch) => "OffsetFetch",
        _ => "a request",
    }
}
