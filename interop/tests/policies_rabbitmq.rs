//! Policies (issue 11 part 4) against the real thing: the scenarios of
//! tests/python/policy_scenarios.py (precedence, a policy changed under a live queue,
//! message-ttl / max-length / dead-lettering through a policy, policy and argument on one
//! queue, alternate-exchange, the quorum delivery limit) run unchanged against the local
//! RabbitMQ, whose policies are set with `rabbitmqctl set_policy`, and against Warren's
//! listener, whose policies are set with `Broker::set_policy`; each in a vhost of the same
//! fresh name that the test creates and deletes. The observations must be equal.
//!
//! Without python3 (with `pika`), RabbitMQ or `rabbitmqctl` the test is reported as ignored
//! with the reason; under `CI=true` it runs and fails.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};

use serde_json::Value;
use warren_interop::{
    assert_same_observations, rabbitmqctl, serve, trial, warren_vhost, Need, RabbitVhost,
};
use warrenmq::{Broker, FieldTable, FieldValue, Policy, PolicyApplyTo};

fn main() -> ExitCode {
    warren_interop::run(vec![trial(
        "policies_match_rabbitmq",
        &[Need::Python("pika"), Need::RabbitMq, Need::Rabbitmqctl],
        policies_match_rabbitmq,
    )])
}

/// Runs the scenarios against `port`, answering each policy request with `apply`; returns
/// the observations.
fn run_scenarios(port: &str, vhost: &str, mut apply: impl FnMut(&Value)) -> Value {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python");
    let mut child = Command::new("timeout")
        .args(["240", "python3"])
        .arg(dir.join("policy_scenarios.py"))
        .args(["127.0.0.1", port, vhost])
        .current_dir(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    let mut stdin = child.stdin.take().expect("piped stdin");
    let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
    let mut result = None;
    for line in stdout.lines() {
        let line = line.expect("a line from the script");
        let value: Value = serde_json::from_str(&line).expect("JSON lines");
        if let Some(r) = value.get("result") {
            result = Some(r.clone());
            continue;
        }
        apply(&value);
        writeln!(stdin, "ok").expect("the script reads its answer");
    }
    let status = child.wait().expect("the script ends");
    assert!(
        status.success(),
        "policy_scenarios.py against port {port}: {status}"
    );
    result.expect("the script printed its result")
}

/// Converts a JSON definition into a field table (integers, strings, booleans).
fn definition(json: &Value) -> FieldTable {
    let mut table = FieldTable::new();
    for (key, value) in json.as_object().expect("a definition object") {
        let value = match value {
            Value::Number(n) => FieldValue::I64(n.as_i64().expect("an integer")),
            Value::String(s) => FieldValue::String(s.clone()),
            Value::Bool(b) => FieldValue::Bool(*b),
            other => panic!("unexpected definition value {other}"),
        };
        table.insert(key.as_str(), value);
    }
    table
}

fn apply_to_warren(broker: &Broker, vhost: &str, op: &Value) {
    let name = op["name"].as_str().expect("a policy name");
    match op["op"].as_str() {
        Some("set_policy") => {
            let apply_to = PolicyApplyTo::from_name(op["apply_to"].as_str().expect("apply_to"))
                .expect("a known apply-to");
            let policy = Policy::new(
                name,
                op["pattern"].as_str().expect("a pattern"),
                definition(&op["definition"]),
            )
            .apply_to(apply_to)
            .priority(op["priority"].as_i64().expect("a priority") as i32);
            broker
                .set_policy(vhost, policy)
                .expect("Warren sets the policy");
        }
        Some("clear_policy") => broker
            .clear_policy(vhost, name)
            .expect("Warren clears the policy"),
        other => panic!("unknown request {other:?}"),
    }
}

fn apply_to_rabbitmq(vhost: &str, op: &Value) {
    let name = op["name"].as_str().expect("a policy name");
    match op["op"].as_str() {
        Some("set_policy") => {
            let priority = op["priority"].to_string();
            let definition = op["definition"].to_string();
            rabbitmqctl(&[
                "set_policy",
                "-p",
                vhost,
                "--priority",
                &priority,
                "--apply-to",
                op["apply_to"].as_str().expect("apply_to"),
                name,
                op["pattern"].as_str().expect("a pattern"),
                &definition,
            ]);
        }
        Some("clear_policy") => {
            rabbitmqctl(&["clear_policy", "-p", vhost, name]);
        }
        other => panic!("unknown request {other:?}"),
    }
}

fn policies_match_rabbitmq() {
    let vhost = format!("warren-policies-{}", std::process::id());
    let _rabbit = RabbitVhost::create(&vhost);
    let (broker, server) = serve();
    warren_vhost(&broker, &vhost);
    let port = server.local_addr().port().to_string();
    let rabbit = run_scenarios("5672", &vhost, |op| apply_to_rabbitmq(&vhost, op));
    let warren = run_scenarios(&port, &vhost, |op| apply_to_warren(&broker, &vhost, op));
    assert_same_observations(&warren, &rabbit, 6);
    assert!(
        broker.list_policies(&vhost).expect("the vhost").is_empty(),
        "every policy was cleared"
    );
}
