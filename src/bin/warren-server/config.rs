//! `--config FILE`: the server's settings in a TOML file, one key per long flag of
//! `--help` (`data-dir` or `data_dir`), under the command line and the environment:
//!
//! ```toml
//! listen = "0.0.0.0:5672"
//! user = "admin"
//! password-file = "/run/secrets/warren"   # or password = "...", kept out of argv
//! data_dir = "/var/lib/warren"
//! strict-binding-durability = true
//! connection-max = 1000
//! ```
//!
//! A flag on the command line wins over its environment variable (for those that have one),
//! which wins over the file, which wins over the default. The file's settings are turned
//! into flags placed before the command line's and parsed with them, so every flag is a
//! setting, with the same checks and the same error texts.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::parser::ValueSource;
use clap::{ArgAction, ArgMatches, Command, CommandFactory, FromArgMatches};

/// Flags that are not settings: a file cannot set them.
const NOT_SETTINGS: [&str; 4] = ["config", "salvage", "help", "version"];

/// The parsed command line.
pub(crate) struct Parsed<A> {
    /// The settings: command line, environment, config file, defaults.
    pub(crate) args: A,
    /// Where each value of the command line alone (without the file) came from.
    pub(crate) given: ArgMatches,
}

/// Parses the process's arguments with the settings of `--config FILE` under them; prints
/// the error (or `--help`) and exits as clap does, with status 2 for a file that cannot be
/// read or holds an unknown key.
pub(crate) fn parse<A: CommandFactory + FromArgMatches>() -> Parsed<A> {
    let argv: Vec<OsString> = std::env::args_os().collect();
    let command = A::command();
    // A lenient first pass finds the file and what the command line sets; the second,
    // strict one reports every error (and answers --help / --version).
    let given = command
        .clone()
        .ignore_errors(true)
        .try_get_matches_from(&argv)
        .unwrap_or_else(|e| e.exit());
    let mut from_file = Vec::new();
    let path = given.get_one::<PathBuf>("config").cloned();
    if let Some(path) = &path {
        match read(path, &command, &given) {
            Ok(flags) => from_file = flags,
            Err(message) => {
                eprintln!("error: --config {}: {message}", path.display());
                std::process::exit(2);
            }
        }
    }
    let mut merged = argv.first().cloned().into_iter().collect::<Vec<_>>();
    merged.extend(from_file);
    merged.extend(argv.iter().skip(1).cloned());
    let matches = command.try_get_matches_from(merged).unwrap_or_else(|e| {
        if let Some(path) = &path {
            eprintln!(
                "warren-server: with the settings of --config {}:",
                path.display()
            );
        }
        e.exit()
    });
    let args = A::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    Parsed { args, given }
}

/// Reads the file and returns its settings as flags, leaving out those the command line or
/// the environment sets.
fn read(path: &Path, command: &Command, given: &ArgMatches) -> Result<Vec<OsString>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let flags = flags(&text, command, given)?;
    warn_if_readable_by_others(path, &text);
    Ok(flags)
}

/// Turns the TOML `text` into flags (`--key=value`, or `--key` for a switch set to true).
fn flags(text: &str, command: &Command, given: &ArgMatches) -> Result<Vec<OsString>, String> {
    let table: toml::Table = toml::from_str(text).map_err(|e| e.to_string())?;
    let mut flags = Vec::new();
    for (key, value) in &table {
        let long = key.replace('_', "-");
        let arg = command
            .get_arguments()
            .find(|a| a.get_long() == Some(long.as_str()))
            .filter(|_| !NOT_SETTINGS.contains(&long.as_str()))
            .ok_or_else(|| {
                format!(
                    "unknown setting '{key}' (the settings are the long flags of --help, \
                     such as data-dir or data_dir)"
                )
            })?;
        if matches!(
            given.value_source(arg.get_id().as_str()),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        ) {
            continue;
        }
        let switch = matches!(arg.get_action(), ArgAction::SetTrue);
        let text = match value {
            toml::Value::Boolean(on) if switch => {
                if *on {
                    flags.push(format!("--{long}").into());
                }
                continue;
            }
            _ if switch => return Err(format!("'{key}' is a switch: true or false")),
            toml::Value::String(s) => s.clone(),
            toml::Value::Integer(n) => n.to_string(),
            toml::Value::Float(x) => x.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            _ => return Err(format!("'{key}' takes one value (a string or a number)")),
        };
        flags.push(format!("--{long}={text}").into());
    }
    Ok(flags)
}

/// A file with a password that other users can read defeats keeping it out of argv.
#[cfg(unix)]
fn warn_if_readable_by_others(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt as _;
    let secret = text.lines().any(|l| l.trim_start().starts_with("password"));
    let mode = std::fs::metadata(path).map_or(0, |m| m.permissions().mode());
    if secret && mode & 0o077 != 0 {
        eprintln!(
            "warren-server: warning: --config {} holds a password and is readable by other \
             users (mode {:o}); chmod 600 it",
            path.display(),
            mode & 0o777
        );
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_: &Path, _: &str) {}

#[cfg(test)]
mod tests {
    use clap::{Arg, ArgAction, Command};

    use super::*;

    fn command() -> Command {
        Command::new("t")
            .arg(Arg::new("config").long("config"))
            .arg(Arg::new("data_dir").long("data-dir"))
            .arg(Arg::new("channel_max").long("channel-max"))
            .arg(Arg::new("password").long("password"))
            .arg(Arg::new("strict").long("strict").action(ArgAction::SetTrue))
    }

    fn flags_for(text: &str, argv: &[&str]) -> Result<Vec<String>, String> {
        let given = command().ignore_errors(true).get_matches_from(argv);
        let flags = flags(text, &command(), &given)?;
        Ok(flags
            .into_iter()
            .map(|f| f.into_string().unwrap())
            .collect())
    }

    #[test]
    fn keys_become_flags_unless_the_command_line_sets_them() {
        let text = "data_dir = \"/d\"\nchannel-max = 7\nstrict = true\npassword = \"pw\"\n";
        assert_eq!(
            flags_for(text, &["t"]).unwrap(),
            [
                "--channel-max=7",
                "--data-dir=/d",
                "--password=pw",
                "--strict"
            ]
        );
        assert_eq!(
            flags_for(text, &["t", "--data-dir", "/cli"]).unwrap(),
            ["--channel-max=7", "--password=pw", "--strict"]
        );
        assert_eq!(
            flags_for("strict = false", &["t"]).unwrap(),
            Vec::<String>::new()
        );
    }

    #[test]
    fn unknown_keys_and_wrong_kinds_are_errors() {
        let err = flags_for("bogus = 1", &["t"]).unwrap_err();
        assert!(err.contains("unknown setting 'bogus'"), "{err}");
        let err = flags_for("config = \"x\"", &["t"]).unwrap_err();
        assert!(err.contains("unknown setting 'config'"), "{err}");
        let err = flags_for("strict = \"yes\"", &["t"]).unwrap_err();
        assert!(err.contains("switch"), "{err}");
        let err = flags_for("channel-max = [1, 2]", &["t"]).unwrap_err();
        assert!(err.contains("one value"), "{err}");
        assert!(flags_for("channel-max = ", &["t"]).is_err());
    }
}
