//! SASL on a new connection (SaslHandshake, then SaslAuthenticate rounds, KIP-152): PLAIN, and SCRAM-SHA-256
//! and -512 with the `ssl` feature (their hashes come from OpenSSL), as librdkafka's `sasl.mechanism`,
//! `sasl.username` and `sasl.password` say.

use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::{SaslAuthenticateRequest, SaslHandshakeRequest};
use kafka_protocol::protocol::StrBytes;

use super::{Connection, WireError};

/// `sasl.*`.
#[derive(Clone)]
pub(super) struct SaslSettings {
    mechanism: Mechanism,
    username: String,
    password: String,
}

impl std::fmt::Debug for SaslSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The password stays out of logs.
        f.debug_struct("SaslSettings").field("mechanism", &self.mechanism).field("username", &self.username).finish()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mechanism {
    Plain,
    #[cfg_attr(not(feature = "ssl"), allow(dead_code))]
    ScramSha256,
    #[cfg_attr(not(feature = "ssl"), allow(dead_code))]
    ScramSha512,
}

impl Mechanism {
    fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::ScramSha256 => "SCRAM-SHA-256",
            Mechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }
}

impl SaslSettings {
    pub(super) fn from_settings(setting: &dyn Fn(&str) -> Option<String>) -> Result<SaslSettings, WireError> {
        let name = setting("sasl.mechanism").or_else(|| setting("sasl.mechanisms")).unwrap_or_else(|| "GSSAPI".into());
        let mechanism = match name.trim().to_ascii_uppercase().as_str() {
            "PLAIN" => Mechanism::Plain,
            #[cfg(feature = "ssl")]
            "SCRAM-SHA-256" => Mechanism::ScramSha256,
            #[cfg(feature = "ssl")]
            "SCRAM-SHA-512" => Mechanism::ScramSha512,
            #[cfg(not(feature = "ssl"))]
            "SCRAM-SHA-256" | "SCRAM-SHA-512" => {
                return Err(WireError::Setting {
                    setting: "sasl.mechanism",
                    message: format!("{name} needs the `ssl` cargo feature (its hashes come from OpenSSL)"),
                });
            }
            _ => {
                return Err(WireError::Setting {
                    setting: "sasl.mechanism",
                    message: format!(
                        "the library's own group member speaks PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512, not \
                         `{name}` yet"
                    ),
                });
            }
        };
        let required = |key: &'static str| {
            setting(key).ok_or(WireError::Setting { setting: key, message: format!("{name} needs it") })
        };
        Ok(SaslSettings { mechanism, username: required("sasl.username")?, password: required("sasl.password")? })
    }
}

/// Authenticates `connection` (just opened, versions learned); the session's lifetime if the broker
/// limits it (KIP-368).
pub(super) fn authenticate(
    connection: &mut Connection,
    settings: &SaslSettings,
) -> Result<Option<Duration>, WireError> {
    let mechanism = settings.mechanism.name();
    let failed = |address: &str, message: String| WireError::Authentication {
        address: address.to_string(),
        mechanism: mechanism.to_string(),
        message,
    };
    let handshake = SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str(mechanism));
    let (answer, _) = connection.send(&handshake, 1, 1, Duration::ZERO)?;
    if answer.error_code != 0 {
        let enabled: Vec<&str> = answer.mechanisms.iter().map(|m| m.as_str()).collect();
        return Err(failed(
            connection.address(),
            format!("the broker enables {enabled:?} on this listener (error {})", answer.error_code),
        ));
    }
    let mut lifetime = None;
    let mut round = |connection: &mut Connection, bytes: Vec<u8>| -> Result<Vec<u8>, WireError> {
        let request = SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(bytes));
        let (answer, _) = connection.send(&request, 0, 2, Duration::ZERO)?;
        if answer.error_code != 0 {
            let message = answer.error_message.as_deref().unwrap_or("no reason given").to_string();
            return Err(failed(connection.address(), format!("{message} (error {})", answer.error_code)));
        }
        if answer.session_lifetime_ms > 0 {
            lifetime = Some(Duration::from_millis(answer.session_lifetime_ms.unsigned_abs()));
        }
        Ok(answer.auth_bytes.to_vec())
    };
    match settings.mechanism {
        Mechanism::Plain => {
            let mut bytes = vec![0];
            bytes.extend_from_slice(settings.username.as_bytes());
            bytes.push(0);
            bytes.extend_from_slice(settings.password.as_bytes());
            round(connection, bytes)?;
        }
        #[cfg(feature = "ssl")]
        Mechanism::ScramSha256 | Mechanism::ScramSha512 => {
            let hash = if settings.mechanism == Mechanism::ScramSha256 {
                super::scram::Hash::Sha256
            } else {
                super::scram::Hash::Sha512
            };
            let address = connection.address().to_string();
            let client = super::scram::Client::new(hash, &settings.username, &settings.password)
                .map_err(|e| failed(&address, e))?;
            let server_first = round(connection, client.first_message().into_bytes())?;
            let (client, final_message) = client.final_message(&server_first).map_err(|e| failed(&address, e))?;
            let server_final = round(connection, final_message.into_bytes())?;
            client.verify(&server_final).map_err(|e| failed(&address, e))?;
        }
        #[cfg(not(feature = "ssl"))]
        Mechanism::ScramSha256 | Mechanism::ScramSha512 => unreachable!("refused by SaslSettings"),
    }
    Ok(lifetime)
}
