//! [`Permissions`]: a user's configure / write / read regular expressions in one vhost, and
//! their compiled form that channel operations check (with RabbitMQ's 403 texts).

use regex::Regex;

use crate::{Error, Result};

/// What a user may do in one vhost, as RabbitMQ models it: three regular expressions
/// matched against the names of queues and exchanges.
///
/// - `configure`: declare and delete the resource (`queue.declare`, `exchange.declare`,
///   `queue.delete`, `exchange.delete`);
/// - `write`: put messages into it (`basic.publish` to an exchange; the destination of
///   `queue.bind` / `exchange.bind`; the alternate exchange of a declared exchange and the
///   dead-letter exchange of a declared queue);
/// - `read`: take messages out of it (`basic.get`, `basic.consume`, `queue.purge` on a
///   queue; the source exchange of a binding).
///
/// A pattern matches when it matches anywhere in the name (as Erlang's `re:run`, which
/// RabbitMQ uses): anchor it with `^` and `$` to match whole names. `".*"` allows
/// everything; the empty pattern allows nothing (RabbitMQ reads it as `^$`, and the
/// default exchange is checked under the name `amq.default`). The syntax is that of the
/// [`regex`](https://docs.rs/regex) crate, which covers what permissions use in practice;
/// look-around and back-references (PCRE features) are refused.
///
/// # Examples
///
/// ```
/// use warrenmq::Permissions;
///
/// let everything = Permissions::full();
/// assert_eq!(everything.configure, ".*");
/// let reader = Permissions::new("", "", "^reports\\.");
/// assert_eq!(reader.read, "^reports\\.");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Permissions {
    /// The pattern of names the user may declare and delete.
    pub configure: String,
    /// The pattern of names the user may publish to or bind to.
    pub write: String,
    /// The pattern of names the user may consume from, get from, purge or bind from.
    pub read: String,
}

impl Permissions {
    /// Permissions with the given patterns.
    pub fn new(
        configure: impl Into<String>,
        write: impl Into<String>,
        read: impl Into<String>,
    ) -> Permissions {
        Permissions {
            configure: configure.into(),
            write: write.into(),
            read: read.into(),
        }
    }

    /// `".*"` for all three: every operation on every resource of the vhost.
    pub fn full() -> Permissions {
        Permissions::new(".*", ".*", ".*")
    }
}

/// One of the three kinds of access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Access {
    /// Declare, delete.
    Configure,
    /// Publish to, bind to.
    Write,
    /// Consume, get, purge, bind from.
    Read,
}

/// The kind of resource a check names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Resource {
    /// An exchange (the default exchange is named `amq.default` in checks and texts).
    Exchange,
    /// A queue.
    Queue,
}

impl Resource {
    fn word(self) -> &'static str {
        match self {
            Resource::Exchange => "exchange",
            Resource::Queue => "queue",
        }
    }
}

/// A compiled pattern.
#[derive(Debug)]
enum Pattern {
    /// `.*`: matches every name without running a regex.
    All,
    /// The empty pattern, which RabbitMQ reads as `^$`: only the empty name.
    EmptyOnly,
    /// Anything else.
    Regex(Regex),
}

impl Pattern {
    fn compile(which: &str, pattern: &str) -> Result<Pattern> {
        match pattern {
            ".*" => Ok(Pattern::All),
            // RabbitMQ reads an empty pattern as "^$".
            "" => Ok(Pattern::EmptyOnly),
            p => Regex::new(p).map(Pattern::Regex).map_err(|e| {
                Error::precondition(format!("invalid {which} permission pattern '{p}': {e}"))
            }),
        }
    }

    fn matches(&self, name: &str) -> bool {
        match self {
            Pattern::All => true,
            Pattern::EmptyOnly => name.is_empty(),
            Pattern::Regex(re) => re.is_match(name),
        }
    }
}

/// [`Permissions`] compiled for checking.
#[derive(Debug)]
pub(crate) struct Compiled {
    /// What they were compiled from.
    pub(crate) source: Permissions,
    configure: Pattern,
    write: Pattern,
    read: Pattern,
}

impl Compiled {
    /// Compiles the three patterns.
    ///
    /// # Errors
    ///
    /// 406 naming the first pattern that is not a valid regular expression.
    pub(crate) fn new(source: Permissions) -> Result<Compiled> {
        Ok(Compiled {
            configure: Pattern::compile("configure", &source.configure)?,
            write: Pattern::compile("write", &source.write)?,
            read: Pattern::compile("read", &source.read)?,
            source,
        })
    }

    /// Returns `true` if `access` to `name` is allowed.
    pub(crate) fn allows(&self, access: Access, name: &str) -> bool {
        let name = if name.is_empty() { "amq.default" } else { name };
        match access {
            Access::Configure => self.configure.matches(name),
            Access::Write => self.write.matches(name),
            Access::Read => self.read.matches(name),
        }
    }
}

/// RabbitMQ's 403 for a refused resource access.
pub(crate) fn refused(resource: Resource, name: &str, vhost: &str, user: &str) -> Error {
    let name = if name.is_empty() && resource == Resource::Exchange {
        "amq.default"
    } else {
        name
    };
    Error::access_refused(format!(
        "access to {} '{name}' in vhost '{vhost}' refused for user '{user}'",
        resource.word()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_anywhere_and_empty_means_nothing_but_the_empty_name() {
        let p = Compiled::new(Permissions::new("^new", "", "q")).unwrap();
        assert!(p.allows(Access::Configure, "newq"));
        assert!(!p.allows(Access::Configure, "oldnew"));
        assert!(!p.allows(Access::Write, "x"));
        // The default exchange is checked as amq.default, which "" (^$) does not match.
        assert!(!p.allows(Access::Write, ""));
        assert!(p.allows(Access::Read, "aqa"));
        let all = Compiled::new(Permissions::full()).unwrap();
        assert!(all.allows(Access::Write, "") && all.allows(Access::Read, "anything"));
    }

    #[test]
    fn invalid_patterns_are_refused_with_406() {
        let err = Compiled::new(Permissions::new(".*", "(", ".*")).unwrap_err();
        assert_eq!(err.reply_code().0, 406);
        assert!(err.to_string().contains("write"), "{err}");
    }

    #[test]
    fn texts_are_rabbitmqs() {
        assert_eq!(
            refused(Resource::Exchange, "", "v", "u").to_string(),
            "ACCESS_REFUSED - access to exchange 'amq.default' in vhost 'v' refused for user 'u'"
        );
        assert_eq!(
            refused(Resource::Queue, "q", "v", "u").to_string(),
            "ACCESS_REFUSED - access to queue 'q' in vhost 'v' refused for user 'u'"
        );
    }
}
