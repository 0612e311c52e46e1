//! [`PasswordHash`]: a salted password hash in RabbitMQ's format, so that definitions files
//! carry the same `password_hash` strings in both brokers.
//!
//! RabbitMQ's `rabbit_password_hashing_sha256` (its default) stores
//! `base64(salt ‖ sha256(salt ‖ password))` with a 4-byte random salt;
//! `rabbit_password_hashing_sha512` the same with SHA-512.

use std::fmt;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use rand::RngCore as _;
use sha2::{Digest, Sha256, Sha512};

use crate::{Error, Result};

/// Bytes of salt in front of the digest.
const SALT_BYTES: usize = 4;

/// The hash function of a [`PasswordHash`], named as RabbitMQ names its hashing modules.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HashingAlgorithm {
    /// `rabbit_password_hashing_sha256`, RabbitMQ's default.
    #[default]
    Sha256,
    /// `rabbit_password_hashing_sha512`.
    Sha512,
}

impl HashingAlgorithm {
    /// Returns RabbitMQ's name of the algorithm, as definitions files write it in
    /// `hashing_algorithm`.
    pub fn name(self) -> &'static str {
        match self {
            HashingAlgorithm::Sha256 => "rabbit_password_hashing_sha256",
            HashingAlgorithm::Sha512 => "rabbit_password_hashing_sha512",
        }
    }

    /// Reads RabbitMQ's name of an algorithm.
    ///
    /// # Errors
    ///
    /// 406 for an algorithm Warren does not implement (such as the legacy MD5).
    pub fn from_name(name: &str) -> Result<HashingAlgorithm> {
        match name {
            "rabbit_password_hashing_sha256" => Ok(HashingAlgorithm::Sha256),
            "rabbit_password_hashing_sha512" => Ok(HashingAlgorithm::Sha512),
            other => Err(Error::precondition(format!(
                "unsupported password hashing algorithm '{other}'"
            ))),
        }
    }

    fn digest(self, salt: &[u8], password: &[u8]) -> Vec<u8> {
        match self {
            HashingAlgorithm::Sha256 => {
                let mut h = Sha256::new();
                h.update(salt);
                h.update(password);
                h.finalize().to_vec()
            }
            HashingAlgorithm::Sha512 => {
                let mut h = Sha512::new();
                h.update(salt);
                h.update(password);
                h.finalize().to_vec()
            }
        }
    }

    fn digest_len(self) -> usize {
        match self {
            HashingAlgorithm::Sha256 => 32,
            HashingAlgorithm::Sha512 => 64,
        }
    }
}

/// A salted password hash: what a user's password is kept as.
///
/// # Examples
///
/// ```
/// use warrenmq::{HashingAlgorithm, PasswordHash};
///
/// # fn main() -> Result<(), warrenmq::Error> {
/// let hash = PasswordHash::new("s3cret");
/// assert!(hash.verify("s3cret"));
/// assert!(!hash.verify("guess"));
/// // The base64 form is RabbitMQ's `password_hash`, readable by either broker.
/// let copy = PasswordHash::from_base64(HashingAlgorithm::Sha256, &hash.to_base64())?;
/// assert!(copy.verify("s3cret"));
/// # Ok(())
/// # }
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash {
    algorithm: HashingAlgorithm,
    /// Salt followed by the digest.
    bytes: Vec<u8>,
}

impl PasswordHash {
    /// Hashes `password` with SHA-256 and a fresh random salt (RabbitMQ's default).
    pub fn new(password: &str) -> PasswordHash {
        PasswordHash::with_algorithm(HashingAlgorithm::Sha256, password)
    }

    /// Hashes `password` with `algorithm` and a fresh random salt.
    pub fn with_algorithm(algorithm: HashingAlgorithm, password: &str) -> PasswordHash {
        let mut salt = [0u8; SALT_BYTES];
        rand::thread_rng().fill_bytes(&mut salt);
        let mut bytes = salt.to_vec();
        bytes.extend_from_slice(&algorithm.digest(&salt, password.as_bytes()));
        PasswordHash { algorithm, bytes }
    }

    /// Reads a hash in RabbitMQ's base64 form (`password_hash` of a definitions file).
    ///
    /// # Errors
    ///
    /// 406 if the text is not base64 or not the length the algorithm makes.
    pub fn from_base64(algorithm: HashingAlgorithm, text: &str) -> Result<PasswordHash> {
        let bytes = BASE64
            .decode(text.trim())
            .map_err(|e| Error::precondition(format!("password_hash is not base64: {e}")))?;
        if bytes.len() != SALT_BYTES + algorithm.digest_len() {
            return Err(Error::precondition(format!(
                "password_hash of {} bytes does not fit {} (4 bytes of salt and {} of digest)",
                bytes.len(),
                algorithm.name(),
                algorithm.digest_len()
            )));
        }
        Ok(PasswordHash { algorithm, bytes })
    }

    /// Returns the hash in RabbitMQ's base64 form.
    pub fn to_base64(&self) -> String {
        BASE64.encode(&self.bytes)
    }

    /// Returns the hash function.
    pub fn algorithm(&self) -> HashingAlgorithm {
        self.algorithm
    }

    /// Returns `true` if `password` is the password this hash was made from. The digests
    /// are compared in constant time.
    pub fn verify(&self, password: &str) -> bool {
        let (salt, digest) = self.bytes.split_at(SALT_BYTES.min(self.bytes.len()));
        let candidate = self.algorithm.digest(salt, password.as_bytes());
        candidate.len() == digest.len()
            && candidate
                .iter()
                .zip(digest)
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasswordHash")
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_hash_that_rabbitmq_made() {
        // RabbitMQ 3.10's `guest` (`rabbitmqctl export_definitions -`).
        let made_by_rabbitmq = "P0j0wOIKdZt4DAvd585hhL5aE8Eftx96ysBa7rDkr8EXazcs";
        let hash = PasswordHash::from_base64(HashingAlgorithm::Sha256, made_by_rabbitmq).unwrap();
        assert!(hash.verify("guest"));
        assert!(!hash.verify("Guest"));
        assert_eq!(hash.to_base64(), made_by_rabbitmq);
    }

    #[test]
    fn salts_differ_and_lengths_are_checked() {
        let a = PasswordHash::new("pw");
        let b = PasswordHash::new("pw");
        assert_ne!(a.to_base64(), b.to_base64());
        assert!(a.verify("pw") && b.verify("pw"));
        let long = PasswordHash::with_algorithm(HashingAlgorithm::Sha512, "pw");
        assert!(long.verify("pw"));
        let err = PasswordHash::from_base64(HashingAlgorithm::Sha256, &long.to_base64());
        assert_eq!(err.unwrap_err().reply_code().0, 406);
        assert!(PasswordHash::from_base64(HashingAlgorithm::Sha256, "not base64!").is_err());
        assert!(HashingAlgorithm::from_name("rabbit_password_hashing_md5").is_err());
        assert_eq!(
            HashingAlgorithm::from_name(HashingAlgorithm::Sha512.name()).unwrap(),
            HashingAlgorithm::Sha512
        );
    }
}
