//! [`IntoBody`]: what a message body can be made from.

use std::borrow::Cow;

use bytes::{Bytes, BytesMut};

/// A value that can become a message body: owned bytes and strings are taken as they are,
/// borrowed ones are copied.
///
/// [`Message::new`](crate::Message::new) takes any of them, so a body can come from a
/// `String`, a `Vec<u8>`, a [`Bytes`] (shared, never copied), or a borrowed `&str` or
/// `&[u8]` of any lifetime (copied once, when the message is made). A body is shared by
/// every queue the message reaches, never copied per queue.
///
/// # Examples
///
/// ```
/// use warrenmq::{Bytes, Message};
///
/// let owned = String::from("hello");
/// let borrowed: &str = owned.as_str();
/// assert_eq!(Message::new(borrowed).body(), "hello");   // copied
/// assert_eq!(Message::new(&owned).body(), "hello");     // copied
/// assert_eq!(Message::new(owned).body(), "hello");      // moved, no copy
/// assert_eq!(Message::new(&b"raw"[..]).body(), "raw");
/// assert_eq!(Message::new(*b"raw").body(), "raw");
/// assert_eq!(Message::new(Bytes::from_static(b"static")).body(), "static");
/// ```
pub trait IntoBody {
    /// Converts `self` into the body's bytes.
    fn into_body(self) -> Bytes;
}

impl IntoBody for Bytes {
    fn into_body(self) -> Bytes {
        self
    }
}

impl IntoBody for &Bytes {
    fn into_body(self) -> Bytes {
        self.clone()
    }
}

impl IntoBody for BytesMut {
    fn into_body(self) -> Bytes {
        self.freeze()
    }
}

impl IntoBody for Vec<u8> {
    fn into_body(self) -> Bytes {
        Bytes::from(self)
    }
}

impl IntoBody for String {
    fn into_body(self) -> Bytes {
        Bytes::from(self)
    }
}

impl IntoBody for Box<[u8]> {
    fn into_body(self) -> Bytes {
        Bytes::from(self)
    }
}

impl IntoBody for Box<str> {
    fn into_body(self) -> Bytes {
        Bytes::from(self.into_boxed_bytes())
    }
}

impl IntoBody for &str {
    fn into_body(self) -> Bytes {
        Bytes::copy_from_slice(self.as_bytes())
    }
}

impl IntoBody for &String {
    fn into_body(self) -> Bytes {
        Bytes::copy_from_slice(self.as_bytes())
    }
}

impl IntoBody for &[u8] {
    fn into_body(self) -> Bytes {
        Bytes::copy_from_slice(self)
    }
}

impl IntoBody for &Vec<u8> {
    fn into_body(self) -> Bytes {
        Bytes::copy_from_slice(self)
    }
}

impl<const N: usize> IntoBody for [u8; N] {
    fn into_body(self) -> Bytes {
        Bytes::copy_from_slice(&self)
    }
}

impl<const N: usize> IntoBody for &[u8; N] {
    fn into_body(self) -> Bytes {
        Bytes::copy_from_slice(self)
    }
}

impl IntoBody for Cow<'_, str> {
    fn into_body(self) -> Bytes {
        match self {
            Cow::Borrowed(s) => s.into_body(),
            Cow::Owned(s) => s.into_body(),
        }
    }
}

impl IntoBody for Cow<'_, [u8]> {
    fn into_body(self) -> Bytes {
        match self {
            Cow::Borrowed(s) => s.into_body(),
            Cow::Owned(s) => s.into_body(),
        }
    }
}
