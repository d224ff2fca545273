//! TLS through OpenSSL, as librdkafka's `ssl.*` settings describe it: the CA to trust (`ssl.ca.location`,
//! else the system's), the client's certificate and key (PEM files, or a PKCS#12 keystore), the broker's
//! name checked against its certificate unless `ssl.endpoint.identification.algorithm=none`.

use std::net::TcpStream;
use std::time::Duration;

use openssl::pkcs12::Pkcs12;
use openssl::pkey::PKey;
use openssl::ssl::{SslConnector, SslFiletype, SslMethod, SslStream, SslVerifyMode};

use super::{TlsSettings, WireError};

pub(super) fn handshake(
    tcp: TcpStream,
    address: &str,
    settings: &TlsSettings,
    timeout: Duration,
) -> Result<SslStream<TcpStream>, WireError> {
    let fail = |message: String| WireError::Tls { address: address.to_string(), message };
    let setting = |setting: &'static str, path: &str, e: openssl::error::ErrorStack| WireError::Setting {
        setting,
        message: format!("{path}: {e}"),
    };
    let mut builder = SslConnector::builder(SslMethod::tls_client()).map_err(|e| fail(e.to_string()))?;
    if let Some(ca) = &settings.ca_location {
        builder.set_ca_file(ca).map_err(|e| setting("ssl.ca.location", ca, e))?;
    }
    if let Some(certificate) = &settings.certificate_location {
        builder
            .set_certificate_chain_file(certificate)
            .map_err(|e| setting("ssl.certificate.location", certificate, e))?;
    }
    if let Some(key) = &settings.key_location {
        match &settings.key_password {
            None => {
                builder.set_private_key_file(key, SslFiletype::PEM).map_err(|e| setting("ssl.key.location", key, e))?
            }
            Some(password) => {
                let pem = std::fs::read(key)
                    .map_err(|e| WireError::Setting { setting: "ssl.key.location", message: format!("{key}: {e}") })?;
                let pkey = PKey::private_key_from_pem_passphrase(&pem, password.as_bytes())
                    .map_err(|e| setting("ssl.key.password", key, e))?;
                builder.set_private_key(&pkey).map_err(|e| setting("ssl.key.location", key, e))?;
            }
        }
    }
    if let Some(store) = &settings.keystore_location {
        let der = std::fs::read(store)
            .map_err(|e| WireError::Setting { setting: "ssl.keystore.location", message: format!("{store}: {e}") })?;
        let parsed = Pkcs12::from_der(&der)
            .and_then(|p| p.parse2(settings.keystore_password.as_deref().unwrap_or("")))
            .map_err(|e| setting("ssl.keystore.password", store, e))?;
        if let Some(certificate) = &parsed.cert {
            builder.set_certificate(certificate).map_err(|e| setting("ssl.keystore.location", store, e))?;
        }
        if let Some(pkey) = &parsed.pkey {
            builder.set_private_key(pkey).map_err(|e| setting("ssl.keystore.location", store, e))?;
        }
        for extra in parsed.ca.into_iter().flatten() {
            builder.add_extra_chain_cert(extra).map_err(|e| setting("ssl.keystore.location", store, e))?;
        }
    }
    if !settings.verify_certificate {
        builder.set_verify(SslVerifyMode::NONE);
    }
    let connector = builder.build();
    let mut configuration = connector.configure().map_err(|e| fail(e.to_string()))?;
    configuration.set_verify_hostname(settings.verify_hostname && settings.verify_certificate);
    let host = address.rsplit_once(':').map_or(address, |(host, _)| host).trim_start_matches('[').trim_end_matches(']');
    tcp.set_read_timeout(Some(timeout)).map_err(|e| fail(e.to_string()))?;
    configuration.connect(host, tcp).map_err(|e| fail(e.to_string()))
}
