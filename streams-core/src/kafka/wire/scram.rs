//! The client side of SCRAM (RFC 5802, with SHA-256 and SHA-512 as RFC 7677 and Kafka's KIP-84 use them):
//! three messages, the server's signature checked so a broker that does not know the password cannot
//! pass for one that does.

use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::sign::Signer;

/// The hash the mechanism is named after.
#[derive(Debug, Clone, Copy)]
pub(super) enum Hash {
    Sha256,
    Sha512,
}

impl Hash {
    fn digest(self) -> MessageDigest {
        match self {
            Hash::Sha256 => MessageDigest::sha256(),
            Hash::Sha512 => MessageDigest::sha512(),
        }
    }
}

/// Kafka's bounds on the iteration count (ScramMechanism's minimum and maximum); this client refuses a
/// server asking for a count outside them (a huge one would hold the connection for minutes).
const MIN_ITERATIONS: usize = 4096;
const MAX_ITERATIONS: usize = 16384;

/// Before the server's first message.
pub(super) struct Client {
    hash: Hash,
    password: String,
    nonce: String,
    first_bare: String,
}

/// After the client's final message: what the server's final message must prove.
#[derive(Debug)]
pub(super) struct Sent {
    server_signature: Vec<u8>,
}

impl Client {
    pub(super) fn new(hash: Hash, username: &str, password: &str) -> Result<Client, String> {
        let mut random = [0u8; 24];
        openssl::rand::rand_bytes(&mut random).map_err(|e| format!("no random nonce: {e}"))?;
        Ok(Client::with_nonce(hash, username, password, openssl::base64::encode_block(&random)))
    }

    fn with_nonce(hash: Hash, username: &str, password: &str, nonce: String) -> Client {
        let name = username.replace('=', "=3D").replace(',', "=2C");
        Client { hash, password: password.to_string(), first_bare: format!("n={name},r={nonce}"), nonce }
    }

    pub(super) fn first_message(&self) -> String {
        format!("n,,{}", self.first_bare)
    }

    /// The client's final message, from the server's first.
    pub(super) fn final_message(self, server_first: &[u8]) -> Result<(Sent, String), String> {
        let server_first = std::str::from_utf8(server_first).map_err(|_| "the server's first message is not UTF-8")?;
        let field = |name: &str| {
            server_first
                .split(',')
                .find_map(|f| f.strip_prefix(name).and_then(|v| v.strip_prefix('=')))
                .ok_or_else(|| format!("the server's first message `{server_first}` has no `{name}`"))
        };
        let nonce = field("r")?;
        if !nonce.starts_with(&self.nonce) || nonce.len() == self.nonce.len() {
            return Err("the server's nonce does not extend the client's".into());
        }
        let salt = openssl::base64::decode_block(field("s")?).map_err(|e| format!("the salt: {e}"))?;
        let iterations: usize = field("i")?.parse().map_err(|_| "the iteration count is not a number")?;
        if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&iterations) {
            return Err(format!("{iterations} iterations, outside Kafka's {MIN_ITERATIONS}..={MAX_ITERATIONS}"));
        }
        let digest = self.hash.digest();
        let mut salted = vec![0u8; digest.size()];
        openssl::pkcs5::pbkdf2_hmac(self.password.as_bytes(), &salt, iterations, digest, &mut salted)
            .map_err(|e| e.to_string())?;
        let client_key = hmac(digest, &salted, b"Client Key")?;
        let stored_key = openssl::hash::hash(digest, &client_key).map_err(|e| e.to_string())?;
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{server_first},{without_proof}", self.first_bare);
        let signature = hmac(digest, &stored_key, auth_message.as_bytes())?;
        let proof: Vec<u8> = client_key.iter().zip(&signature).map(|(k, s)| k ^ s).collect();
        let server_key = hmac(digest, &salted, b"Server Key")?;
        let server_signature = hmac(digest, &server_key, auth_message.as_bytes())?;
        let message = format!("{without_proof},p={}", openssl::base64::encode_block(&proof));
        Ok((Sent { server_signature }, message))
    }
}

impl Sent {
    /// Checks the server's final message.
    pub(super) fn verify(&self, server_final: &[u8]) -> Result<(), String> {
        let server_final = std::str::from_utf8(server_final).map_err(|_| "the server's final message is not UTF-8")?;
        if let Some(error) = server_final.strip_prefix("e=") {
            return Err(format!("the server says: {error}"));
        }
        let signature = server_final
            .split(',')
            .find_map(|f| f.strip_prefix("v="))
            .ok_or_else(|| format!("the server's final message `{server_final}` has no signature"))?;
        let signature = openssl::base64::decode_block(signature).map_err(|e| format!("the signature: {e}"))?;
        // `memcmp::eq` takes slices of one length (it panics otherwise).
        if signature.len() != self.server_signature.len() || !openssl::memcmp::eq(&signature, &self.server_signature) {
            return Err("the server's signature is wrong: it does not know the password".into());
        }
        Ok(())
    }
}

fn hmac(digest: MessageDigest, key: &[u8], data: &[u8]) -> Result<Vec<u8>, String> {
    let key = PKey::hmac(key).map_err(|e| e.to_string())?;
    let mut signer = Signer::new(digest, &key).map_err(|e| e.to_string())?;
    signer.update(data).map_err(|e| e.to_string())?;
    signer.sign_to_vec().map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677's example exchange (SCRAM-SHA-256, user `user`, password `pencil`).
    #[test]
    fn rfc_7677_example() {
        let client = Client::with_nonce(Hash::Sha256, "user", "pencil", "rOprNGfwEbeRWgbNEkqO".into());
        assert_eq!(client.first_message(), "n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
        let server_first = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        let (sent, last) = client.final_message(server_first.as_bytes()).unwrap();
        assert_eq!(
            last,
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        sent.verify(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=").unwrap();
        assert!(sent.verify(b"v=7rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=").is_err(), "a wrong signature");
        assert!(sent.verify(b"e=invalid-proof").unwrap_err().contains("invalid-proof"));
    }

    #[test]
    fn a_server_nonce_that_does_not_extend_the_clients_or_too_few_iterations_are_refused() {
        let client = || Client::with_nonce(Hash::Sha512, "a=b,c", "p", "abc".into());
        assert_eq!(client().first_message(), "n,,n=a=3Db=2Cc,r=abc");
        assert!(client().final_message(b"r=xyzdef,s=AAAA,i=4096").is_err());
        assert!(client().final_message(b"r=abc,s=AAAA,i=4096").is_err(), "no server part");
        assert!(client().final_message(b"r=abcdef,s=AAAA,i=4095").unwrap_err().contains("4095"));
        assert!(client().final_message(b"r=abcdef,s=AAAA,i=3000000000").unwrap_err().contains("3000000000"));
        assert!(client().final_message(b"r=abcdef,s=AAAA").unwrap_err().contains("`i`"));
        assert!(client().final_message(b"r=abcdef,s=AAAA,i=4096").is_ok());
    }
}
