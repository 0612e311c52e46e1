//! Validation and generation of names: server-named queues, consumer tags, length limits.

use rand::Rng;

use crate::{Error, Result};

/// AMQP short strings (names, keys, tags) hold at most 255 bytes.
pub(crate) const MAX_NAME_BYTES: usize = 255;

const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Returns `prefix` followed by 22 random base64url characters (128 bits), the shape of
/// RabbitMQ's `amq.gen-…` queue names and `amq.ctag-…` consumer tags.
pub(crate) fn generate(prefix: &str) -> String {
    let mut rng = rand::thread_rng();
    let mut name = String::with_capacity(prefix.len() + 22);
    name.push_str(prefix);
    name.extend((0..22).map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())])));
    name
}

/// Checks that a name fits an AMQP short string.
pub(crate) fn check_length(what: &str, name: &str) -> Result<()> {
    if name.len() > MAX_NAME_BYTES {
        return Err(Error::precondition(format!(
            "{what} is {} bytes long; the limit is {MAX_NAME_BYTES}",
            name.len()
        )));
    }
    Ok(())
}

/// Checks that a name the client chose does not use the reserved `amq.` prefix (403).
pub(crate) fn check_not_reserved(what: &str, name: &str) -> Result<()> {
    if name.starts_with("amq.") {
        return Err(Error::access_refused(format!(
            "{what} name '{name}' contains reserved prefix 'amq.*'"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_names_have_rabbitmq_shape() {
        let name = generate("amq.gen-");
        assert_eq!(name.len(), 30);
        assert!(name[8..].bytes().all(|b| ALPHABET.contains(&b)));
        assert_ne!(generate("amq.gen-"), name);
    }

    #[test]
    fn limits() {
        assert!(check_length("queue name", &"q".repeat(255)).is_ok());
        assert_eq!(
            check_length("queue name", &"q".repeat(256))
                .unwrap_err()
                .reply_code()
                .0,
            406
        );
        assert_eq!(
            check_not_reserved("exchange", "amq.x")
                .unwrap_err()
                .reply_code()
                .0,
            403
        );
    }
}
