//! Permission checks on the wire, against RabbitMQ: `scripts/permissions_probe.py --driven`
//! runs every operation (declare, delete, bind, unbind, purge, publish, get, consume, ...)
//! as a user with configure, write or read refused in turn, against the local RabbitMQ and
//! against Warren, and the answers (reply codes and texts) must be the same.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};

use warren_interop::{rabbitmqctl as ctl, serve, trial, Need};
use warrenmq::Permissions;

fn main() -> ExitCode {
    warren_interop::run(vec![trial(
        "permission_checks_match_rabbitmq",
        &[Need::Python("pika"), Need::RabbitMq, Need::Rabbitmqctl],
        permission_checks_match_rabbitmq,
    )])
}

fn probe() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/permissions_probe.py")
}

/// Runs the probe in driven mode against 127.0.0.1:`port`, calling `set` for each
/// permission change it asks for (`None`: clear), and returns its result lines with
/// server-generated names masked.
fn drive(
    port: u16,
    vhost: &str,
    user: &str,
    password: &str,
    mut set: impl FnMut(Option<Permissions>),
) -> Vec<String> {
    let mut child = Command::new("timeout")
        .arg("600")
        .arg("python3")
        .arg(probe())
        .args(["--driven", &port.to_string(), vhost, user, password])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    let mut stdin = child.stdin.take().expect("stdin");
    let stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut results = Vec::new();
    for line in stdout.lines() {
        let line = line.expect("a line");
        if let Some(patterns) = line.strip_prefix("SET ") {
            let p: Vec<&str> = patterns
                .split(' ')
                .map(|p| if p == "\"\"" { "" } else { p })
                .collect();
            set(Some(Permissions::new(p[0], p[1], p[2])));
            writeln!(stdin, "ok").expect("the probe reads");
        } else if line == "CLEAR" {
            set(None);
            writeln!(stdin, "ok").expect("the probe reads");
        } else if let Some(result) = line.strip_prefix("R ") {
            results.push(mask(result));
        }
    }
    assert!(child.wait().expect("waits").success(), "the probe failed");
    results
}

/// Replaces the random part of `amq.gen-…` names.
fn mask(line: &str) -> String {
    match line.find("amq.gen-") {
        Some(at) => {
            let end = (at + "amq.gen-".len() + 22).min(line.len());
            format!("{}amq.gen-*{}", &line[..at], mask(&line[end..]))
        }
        None => line.to_owned(),
    }
}

/// A vhost and a user on the local RabbitMQ, deleted on drop.
struct RabbitSetup {
    vhost: String,
    user: String,
}

impl Drop for RabbitSetup {
    fn drop(&mut self) {
        let _ = Command::new("rabbitmqctl")
            .args(["-q", "delete_user", &self.user])
            .output();
        let _ = Command::new("rabbitmqctl")
            .args(["-q", "delete_vhost", &self.vhost])
            .output();
    }
}

fn permission_checks_match_rabbitmq() {
    let tag = format!("warren-perm-{}", std::process::id());
    let (vhost, user, password) = (format!("{tag}-vh"), format!("{tag}-user"), "pw");
    let setup = RabbitSetup {
        vhost: vhost.clone(),
        user: user.clone(),
    };
    ctl(&["add_vhost", &vhost]);
    ctl(&["add_user", &user, password]);
    ctl(&["set_permissions", "-p", &vhost, "guest", ".*", ".*", ".*"]);
    let rabbit = drive(5672, &vhost, &user, password, |p| {
        match p {
            Some(p) => ctl(&[
                "set_permissions",
                "-p",
                &vhost,
                &user,
                &p.configure,
                &p.write,
                &p.read,
            ]),
            None => ctl(&["clear_permissions", "-p", &vhost, &user]),
        };
    });
    drop(setup);

    let (broker, server) = serve();
    broker.add_vhost(&vhost).expect("a vhost");
    broker.add_user(&user, password, &[]).expect("a user");
    broker
        .set_permissions("guest", &vhost, Permissions::full())
        .expect("guest's permissions");
    let port = server.local_addr().port();
    let warren = drive(port, &vhost, &user, password, |p| match p {
        Some(p) => broker.set_permissions(&user, &vhost, p).expect("set"),
        None => broker.clear_permissions(&user, &vhost).expect("clear"),
    });

    assert!(rabbit.len() > 250, "the probe ran its cases: {rabbit:?}");
    let differences: Vec<String> = rabbit
        .iter()
        .zip(&warren)
        .filter(|(r, w)| r != w)
        .map(|(r, w)| format!("RabbitMQ: {r}\nWarren:   {w}"))
        .collect();
    assert!(
        differences.is_empty() && rabbit.len() == warren.len(),
        "{} of {} answers differ:\n{}",
        differences.len(),
        rabbit.len(),
        differences.join("\n")
    );
}
