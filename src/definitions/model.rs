//! The definitions file as RabbitMQ writes it (`rabbitmqctl export_definitions`, the
//! management API's `GET /api/definitions`), read entry by entry so that an error names its
//! entry, and written back in the same shape.

use std::collections::BTreeMap;
use std::io::Read;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::{Error, Result};

/// The RabbitMQ version whose definitions format and management API Warren follows (the
/// `rabbitmq_version` it reports).
pub(crate) const RABBITMQ_VERSION: &str = "3.10.8";

/// Top-level keys Warren reads.
const SECTIONS: &[&str] = &[
    "users",
    "vhosts",
    "permissions",
    "policies",
    "queues",
    "exchanges",
    "bindings",
];

/// The sections of the whole broker that a vhost's definitions do not carry (ignored, with
/// a warning, in a vhost import, as RabbitMQ ignores them).
const BROKER_SECTIONS: &[&str] = &["users", "vhosts", "permissions"];

/// Top-level keys RabbitMQ writes that Warren has no use for: warned about when not empty.
const NOT_IMPORTED: &[(&str, &str)] = &[
    ("topic_permissions", "topic permissions"),
    (
        "parameters",
        "runtime parameters (federation, shovels, ...)",
    ),
    ("global_parameters", "global parameters"),
];

/// Top-level keys that describe the file, read by nobody.
const INFORMATIONAL: &[&str] = &[
    "rabbit_version",
    "rabbitmq_version",
    "product_name",
    "product_version",
    "rabbitmq_definition_format",
    "original_cluster_name",
    "original_vhost_name",
    "explanation",
    "metadata",
    "description",
    "limits",
];

/// A user entry.
#[derive(Clone, Debug, Deserialize)]
pub(super) struct UserDef {
    pub(super) name: String,
    /// Base64 of salt and hash; empty for a user without a password.
    #[serde(default)]
    pub(super) password_hash: String,
    #[serde(default = "sha256")]
    pub(super) hashing_algorithm: String,
    /// A list, or (older RabbitMQ versions) one comma-separated string.
    #[serde(default, deserialize_with = "tags")]
    pub(super) tags: Vec<String>,
    #[serde(flatten)]
    extra: BTreeMap<String, Value>,
}

/// A permission entry: what a user may do in a vhost.
#[derive(Clone, Debug, Deserialize)]
pub(super) struct PermissionDef {
    pub(super) user: String,
    pub(super) vhost: String,
    pub(super) configure: String,
    pub(super) write: String,
    pub(super) read: String,
    #[serde(flatten)]
    extra: BTreeMap<String, Value>,
}

/// A vhost entry.
#[derive(Clone, Debug, Deserialize)]
pub(super) struct VhostDef {
    pub(super) name: String,
    #[serde(flatten)]
    extra: BTreeMap<String, Value>,
}

/// A queue entry.
#[derive(Clone, Debug, Deserialize)]
pub(super) struct QueueDef {
    pub(super) name: String,
    #[serde(default)]
    pub(super) vhost: String,
    #[serde(default = "yes")]
    pub(super) durable: bool,
    #[serde(default)]
    pub(super) auto_delete: bool,
    #[serde(default, deserialize_with = "arguments")]
    pub(super) arguments: Map<String, Value>,
    /// `classic`, `quorum` or `stream` (RabbitMQ 3.10 writes it beside `x-queue-type`).
    #[serde(rename = "type", default)]
    pub(super) queue_type: Option<String>,
    #[serde(flatten)]
    extra: BTreeMap<String, Value>,
}

/// An exchange entry.
#[derive(Clone, Debug, Deserialize)]
pub(super) struct ExchangeDef {
    pub(super) name: String,
    #[serde(default)]
    pub(super) vhost: String,
    #[serde(rename = "type")]
    pub(super) kind: String,
    #[serde(default = "yes")]
    pub(super) durable: bool,
    #[serde(default)]
    pub(super) auto_delete: bool,
    #[serde(default)]
    pub(super) internal: bool,
    #[serde(default, deserialize_with = "arguments")]
    pub(super) arguments: Map<String, Value>,
    #[serde(flatten)]
    extra: BTreeMap<String, Value>,
}

/// A binding entry: exchange to queue or exchange to exchange.
#[derive(Clone, Debug, Deserialize)]
pub(super) struct BindingDef {
    pub(super) source: String,
    #[serde(default)]
    pub(super) vhost: String,
    pub(super) destination: String,
    /// `queue` or `exchange`.
    pub(super) destination_type: String,
    #[serde(default)]
    pub(super) routing_key: String,
    #[serde(default, deserialize_with = "arguments")]
    pub(super) arguments: Map<String, Value>,
    #[serde(flatten)]
    extra: BTreeMap<String, Value>,
}

/// A policy entry.
#[derive(Clone, Debug, Deserialize)]
pub(super) struct PolicyDef {
    #[serde(default)]
    pub(super) vhost: String,
    pub(super) name: String,
    pub(super) pattern: String,
    #[serde(rename = "apply-to", default = "all")]
    pub(super) apply_to: String,
    pub(super) definition: Map<String, Value>,
    #[serde(default)]
    pub(super) priority: i32,
    #[serde(flatten)]
    extra: BTreeMap<String, Value>,
}

fn yes() -> bool {
    true
}

fn all() -> String {
    "all".to_owned()
}

fn sha256() -> String {
    "rabbit_password_hashing_sha256".to_owned()
}

/// Tags: a list of strings, or one string of comma-separated tags.
fn tags<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> std::result::Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Tags {
        List(Vec<String>),
        Text(String),
    }
    Ok(match Tags::deserialize(deserializer)? {
        Tags::List(list) => list,
        Tags::Text(text) => text
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .collect(),
    })
}

/// Arguments: an object, or `null` / `[]` for none (RabbitMQ writes `[]` in places).
fn arguments<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> std::result::Result<Map<String, Value>, D::Error> {
    match Value::deserialize(deserializer)? {
        Value::Object(map) => Ok(map),
        Value::Null => Ok(Map::new()),
        Value::Array(a) if a.is_empty() => Ok(Map::new()),
        other => Err(serde::de::Error::custom(format!(
            "arguments must be a JSON object, not {other}"
        ))),
    }
}

/// A parsed definitions file: what Warren imports, and what it warns about.
#[derive(Clone, Debug, Default)]
pub(super) struct Definitions {
    pub(super) users: Vec<UserDef>,
    pub(super) vhosts: Vec<VhostDef>,
    pub(super) permissions: Vec<PermissionDef>,
    pub(super) policies: Vec<PolicyDef>,
    pub(super) queues: Vec<QueueDef>,
    pub(super) exchanges: Vec<ExchangeDef>,
    pub(super) bindings: Vec<BindingDef>,
    pub(super) warnings: Vec<String>,
}

/// The error of a file that cannot be imported, naming the entry.
pub(super) fn refused(entry: impl Into<String>, reason: impl ToString) -> Error {
    Error::InvalidDefinitions {
        entry: entry.into(),
        reason: reason.to_string(),
    }
}

impl Definitions {
    /// Reads and checks the shape of a definitions file. With `vhost`, the file is the
    /// definitions of that one vhost (the management API's `/api/definitions/{vhost}`):
    /// its entries go to `vhost` whatever their `vhost` key says, and its `vhosts` section
    /// is ignored.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidDefinitions`] naming the file (not JSON, not an object) or the entry
    /// (`queues[3] ('jobs')`: a missing or mistyped field).
    pub(super) fn parse(reader: impl Read, vhost: Option<&str>) -> Result<Definitions> {
        let value: Value = serde_json::from_reader(reader).map_err(|e| refused("the file", e))?;
        let Value::Object(top) = value else {
            return Err(refused("the file", "a JSON object was expected"));
        };
        let mut defs = Definitions::default();
        for (key, value) in &top {
            if let Some((_, what)) = NOT_IMPORTED.iter().find(|(k, _)| k == key) {
                let count = value.as_array().map_or(1, Vec::len);
                if count > 0 {
                    defs.warnings
                        .push(format!("{count} {what} not imported: Warren has no {what}"));
                }
            } else if !SECTIONS.contains(&key.as_str()) && !INFORMATIONAL.contains(&key.as_str()) {
                defs.warnings.push(format!("unknown key '{key}' ignored"));
            }
        }
        match vhost {
            None => {
                defs.users = section(&top, "users", &mut defs.warnings)?;
                defs.vhosts = section(&top, "vhosts", &mut defs.warnings)?;
                defs.permissions = section(&top, "permissions", &mut defs.warnings)?;
            }
            Some(_) => {
                for key in BROKER_SECTIONS {
                    if top
                        .get(*key)
                        .and_then(Value::as_array)
                        .is_some_and(|a| !a.is_empty())
                    {
                        defs.warnings
                            .push(format!("'{key}' ignored: a vhost's definitions have none"));
                    }
                }
            }
        }
        defs.policies = section(&top, "policies", &mut defs.warnings)?;
        defs.queues = section(&top, "queues", &mut defs.warnings)?;
        defs.exchanges = section(&top, "exchanges", &mut defs.warnings)?;
        defs.bindings = section(&top, "bindings", &mut defs.warnings)?;
        defs.place(vhost)?;
        Ok(defs)
    }

    /// Puts every entry in `vhost` if given; otherwise checks that each names its vhost.
    fn place(&mut self, vhost: Option<&str>) -> Result<()> {
        fn fill<'a>(
            section: &str,
            entries: impl Iterator<Item = (&'a mut String, &'a str)>,
            vhost: Option<&str>,
        ) -> Result<()> {
            for (i, (v, name)) in entries.enumerate() {
                match vhost {
                    Some(vhost) => vhost.clone_into(v),
                    None if v.is_empty() => {
                        return Err(refused(
                            format!("{section}[{i}] ('{name}')"),
                            "missing field `vhost`",
                        ))
                    }
                    None => {}
                }
            }
            Ok(())
        }
        let policies = self.policies.iter_mut().map(|p| (&mut p.vhost, &*p.name));
        fill("policies", policies, vhost)?;
        let queues = self.queues.iter_mut().map(|q| (&mut q.vhost, &*q.name));
        fill("queues", queues, vhost)?;
        let exchanges = self.exchanges.iter_mut().map(|x| (&mut x.vhost, &*x.name));
        fill("exchanges", exchanges, vhost)?;
        let bindings = self.bindings.iter_mut().map(|b| (&mut b.vhost, &*b.source));
        fill("bindings", bindings, vhost)
    }
}

/// Reads one section (an array of entries), each entry on its own so that an error names
/// it; keys of an entry Warren does not know are warned about.
fn section<T: DeserializeOwned + Extra>(
    top: &Map<String, Value>,
    name: &str,
    warnings: &mut Vec<String>,
) -> Result<Vec<T>> {
    let Some(value) = top.get(name) else {
        return Ok(Vec::new());
    };
    let Value::Array(entries) = value else {
        return Err(refused(format!("'{name}'"), "an array was expected"));
    };
    let mut out = Vec::with_capacity(entries.len());
    for (i, entry) in entries.iter().enumerate() {
        let label = || match entry
            .get("name")
            .or_else(|| entry.get("source"))
            .and_then(Value::as_str)
        {
            Some(n) => format!("{name}[{i}] ('{n}')"),
            None => format!("{name}[{i}]"),
        };
        let parsed: T = serde_json::from_value(entry.clone()).map_err(|e| refused(label(), e))?;
        for key in parsed.extra().keys() {
            if !T::QUIET.contains(&key.as_str()) {
                warnings.push(format!("{}: unknown key '{key}' ignored", label()));
            }
        }
        out.push(parsed);
    }
    Ok(out)
}

/// The keys of an entry Warren did not read.
trait Extra {
    /// Keys RabbitMQ writes that mean nothing here and need no warning.
    const QUIET: &'static [&'static str];

    fn extra(&self) -> &BTreeMap<String, Value>;
}

macro_rules! extra {
    ($($t:ty => [$($quiet:literal),*]),* $(,)?) => {
        $(impl Extra for $t {
            const QUIET: &'static [&'static str] = &[$($quiet),*];

            fn extra(&self) -> &BTreeMap<String, Value> {
                &self.extra
            }
        })*
    };
}

extra! {
    UserDef => ["limits"],
    PermissionDef => [],
    VhostDef => ["limits", "metadata", "tags", "description", "default_queue_type", "tracing"],
    QueueDef => [],
    ExchangeDef => [],
    BindingDef => [],
    PolicyDef => [],
}

/// The top of an export: the broker's and the format's versions.
pub(super) fn header() -> Map<String, Value> {
    let mut top = Map::new();
    top.insert("rabbit_version".into(), RABBITMQ_VERSION.into());
    top.insert("rabbitmq_version".into(), RABBITMQ_VERSION.into());
    top.insert("product_name".into(), "Warren".into());
    top.insert("product_version".into(), env!("CARGO_PKG_VERSION").into());
    top
}

/// A vhost entry as RabbitMQ 3.10 writes it.
pub(super) fn vhost_json(name: &str) -> Value {
    json!({"name": name, "limits": [], "metadata": {"description": "", "tags": []}})
}

/// The sections Warren writes empty (it has none of those things).
pub(super) const EMPTY_SECTIONS: &[&str] =
    &["topic_permissions", "parameters", "global_parameters"];
