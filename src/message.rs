//! Messages: a shared body plus the AMQP basic properties.

use std::sync::Arc;

use bytes::Bytes;

use crate::body::IntoBody;
use serde::{Deserialize, Serialize};

use crate::{FieldTable, FieldValue};

/// Whether a message should survive a broker restart (AMQP `delivery-mode`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum DeliveryMode {
    /// `1`: kept in memory only.
    #[default]
    Transient,
    /// `2`: written to disk when routed to a durable queue of a persistent broker.
    Persistent,
}

impl DeliveryMode {
    /// Returns the AMQP octet (`1` or `2`).
    pub fn as_u8(self) -> u8 {
        match self {
            DeliveryMode::Transient => 1,
            DeliveryMode::Persistent => 2,
        }
    }

    /// Reads the AMQP octet: `2` is persistent, anything else transient (as RabbitMQ does).
    pub fn from_u8(mode: u8) -> Self {
        if mode == 2 {
            DeliveryMode::Persistent
        } else {
            DeliveryMode::Transient
        }
    }
}

/// The AMQP 0-9-1 basic properties of a message. Every field is optional.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Properties {
    /// MIME content type, e.g. `application/json`.
    pub content_type: Option<String>,
    /// MIME content encoding, e.g. `gzip`.
    pub content_encoding: Option<String>,
    /// Application headers (also what a headers exchange routes on).
    pub headers: Option<FieldTable>,
    /// Transient or persistent.
    pub delivery_mode: Option<DeliveryMode>,
    /// Priority, 0 to 9 by convention; used by priority queues.
    pub priority: Option<u8>,
    /// Correlation id, for RPC replies.
    pub correlation_id: Option<String>,
    /// The queue to send a reply to, for RPC.
    pub reply_to: Option<String>,
    /// Per-message TTL in milliseconds, as a decimal string (as AMQP carries it).
    pub expiration: Option<String>,
    /// Application message id.
    pub message_id: Option<String>,
    /// Timestamp in seconds since the Unix epoch.
    pub timestamp: Option<u64>,
    /// Application message type (AMQP `type`).
    pub message_type: Option<String>,
    /// Creating user id.
    pub user_id: Option<String>,
    /// Creating application id.
    pub app_id: Option<String>,
    /// Reserved by AMQP (`cluster-id`); carried, never interpreted.
    pub cluster_id: Option<String>,
}

impl Properties {
    /// Returns `true` if the delivery mode is persistent.
    pub fn is_persistent(&self) -> bool {
        self.delivery_mode == Some(DeliveryMode::Persistent)
    }
}

/// A message to publish: a body, shared and never copied per queue, and its properties.
///
/// # Examples
///
/// ```
/// use warrenmq::Message;
///
/// let msg = Message::new(r#"{"id": "0111"}"#)
///     .content_type("application/json")
///     .persistent()
///     .header("source", "tutorial");
/// assert!(msg.properties().is_persistent());
/// assert_eq!(msg.body().as_ref(), br#"{"id": "0111"}"#);
/// ```
#[derive(Clone, Debug, Default)]
pub struct Message {
    body: Bytes,
    /// `None` while every property is unset, which keeps a plain message small and its
    /// publishing free of allocations for properties.
    properties: Option<Arc<Properties>>,
}

/// The properties of a message that sets none.
static NO_PROPERTIES: Properties = Properties {
    content_type: None,
    content_encoding: None,
    headers: None,
    delivery_mode: None,
    priority: None,
    correlation_id: None,
    reply_to: None,
    expiration: None,
    message_id: None,
    timestamp: None,
    message_type: None,
    user_id: None,
    app_id: None,
    cluster_id: None,
};

/// Hands out shared copies of properties, so that consecutive messages with equal properties
/// (the usual case when a queue is rebuilt from the store) hold one allocation between them.
#[derive(Debug, Default)]
pub(crate) struct SharedProperties {
    /// The properties handed out last.
    last: Option<Arc<Properties>>,
}

impl SharedProperties {
    /// Returns a message with this body and (shared) properties.
    pub(crate) fn message(&mut self, body: Bytes, properties: &Properties) -> Message {
        if *properties == NO_PROPERTIES {
            return Message {
                body,
                properties: None,
            };
        }
        let shared = match &self.last {
            Some(last) if **last == *properties => Arc::clone(last),
            _ => Arc::clone(self.last.insert(Arc::new(properties.clone()))),
        };
        Message {
            body,
            properties: Some(shared),
        }
    }
}

impl PartialEq for Message {
    fn eq(&self, other: &Self) -> bool {
        self.body == other.body && self.properties() == other.properties()
    }
}

macro_rules! string_setters {
    ($($(#[$doc:meta])* $name:ident;)*) => {
        $(
            $(#[$doc])*
            #[must_use = "builder methods return the changed message"]
            pub fn $name(mut self, value: impl Into<String>) -> Self {
                self.props().$name = Some(value.into());
                self
            }
        )*
    };
}

impl Message {
    /// Creates a message with the given body and no properties.
    ///
    /// The body is anything that is [`IntoBody`]: owned bytes or strings (`String`,
    /// `Vec<u8>`, [`Bytes`]) are taken without a copy, borrowed ones (`&str`, `&[u8]`, of
    /// any lifetime) are copied once.
    ///
    /// # Examples
    ///
    /// ```
    /// use warrenmq::Message;
    ///
    /// let line = format!("order {}", 42);
    /// let borrowed = Message::new(line.as_str());   // copies the bytes
    /// let owned = Message::new(line);               // takes the String
    /// assert_eq!(borrowed, owned);
    /// assert_eq!(Message::new(&b"\x00\x01"[..]).body().len(), 2);
    /// ```
    pub fn new(body: impl IntoBody) -> Self {
        Message {
            body: body.into_body(),
            properties: None,
        }
    }

    /// Creates a message from a body (see [`Message::new`]) and complete properties.
    pub fn with_properties(body: impl IntoBody, properties: Properties) -> Self {
        let properties = (properties != NO_PROPERTIES).then(|| Arc::new(properties));
        Message {
            body: body.into_body(),
            properties,
        }
    }

    fn props(&mut self) -> &mut Properties {
        Arc::make_mut(self.properties.get_or_insert_with(Arc::default))
    }

    /// Returns the body.
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// Returns the properties.
    pub fn properties(&self) -> &Properties {
        self.properties.as_deref().unwrap_or(&NO_PROPERTIES)
    }

    /// Returns the properties for changing them in place.
    pub fn properties_mut(&mut self) -> &mut Properties {
        self.props()
    }

    /// Splits the message into its body and properties.
    pub fn into_parts(self) -> (Bytes, Properties) {
        (
            self.body,
            self.properties
                .map(Arc::unwrap_or_clone)
                .unwrap_or_default(),
        )
    }

    /// Sets `delivery_mode = 2`: the message survives a restart in a durable queue.
    #[must_use = "builder methods return the changed message"]
    pub fn persistent(self) -> Self {
        self.delivery_mode(DeliveryMode::Persistent)
    }

    /// Sets the delivery mode.
    #[must_use = "builder methods return the changed message"]
    pub fn delivery_mode(mut self, mode: DeliveryMode) -> Self {
        self.props().delivery_mode = Some(mode);
        self
    }

    /// Sets the priority.
    #[must_use = "builder methods return the changed message"]
    pub fn priority(mut self, priority: u8) -> Self {
        self.props().priority = Some(priority);
        self
    }

    /// Sets the per-message TTL (`expiration`) in milliseconds.
    #[must_use = "builder methods return the changed message"]
    pub fn expiration_ms(mut self, ttl_ms: u64) -> Self {
        self.props().expiration = Some(ttl_ms.to_string());
        self
    }

    /// Sets the timestamp, in seconds since the Unix epoch.
    #[must_use = "builder methods return the changed message"]
    pub fn timestamp(mut self, seconds: u64) -> Self {
        self.props().timestamp = Some(seconds);
        self
    }

    /// Adds one application header.
    #[must_use = "builder methods return the changed message"]
    pub fn header(mut self, key: impl Into<String>, value: impl Into<FieldValue>) -> Self {
        self.props()
            .headers
            .get_or_insert_with(FieldTable::new)
            .insert(key, value);
        self
    }

    /// Replaces all application headers.
    #[must_use = "builder methods return the changed message"]
    pub fn headers(mut self, headers: FieldTable) -> Self {
        self.props().headers = Some(headers);
        self
    }

    string_setters! {
        /// Sets the content type.
        content_type;
        /// Sets the content encoding.
        content_encoding;
        /// Sets the correlation id.
        correlation_id;
        /// Sets the reply-to queue name.
        reply_to;
        /// Sets the message id.
        message_id;
        /// Sets the message type (AMQP `type`).
        message_type;
        /// Sets the user id.
        user_id;
        /// Sets the application id.
        app_id;
    }
}
