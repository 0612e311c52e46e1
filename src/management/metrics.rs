//! `GET /metrics`: the broker's gauges and counters in Prometheus's text exposition format,
//! with the names of RabbitMQ's Prometheus plugin (`rabbitmq_queue_messages_ready`, ...).
//! As in that plugin, `/metrics` gives queue metrics as totals without labels and
//! `GET /metrics/per-object` one sample per queue, labelled `vhost` and `queue`.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;

use super::server::Api;
use super::system::System;
use crate::{ExchangeStats, QueueStats};

/// Prometheus's text format, version 0.0.4.
const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A metric being written: its samples follow its `# HELP` and `# TYPE` lines.
struct Exposition {
    out: String,
    /// Queue metrics per queue rather than totals.
    per_object: bool,
}

impl Exposition {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape(v));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }

    /// A queue metric: one unlabelled total, or one sample per queue.
    fn per_queue(
        &mut self,
        name: &str,
        kind: &str,
        help: &str,
        queues: &[(String, QueueStats)],
        value: fn(&QueueStats) -> u64,
    ) {
        self.family(name, kind, help);
        if !self.per_object {
            self.sample(name, &[], queues.iter().map(|(_, q)| value(q)).sum::<u64>());
            return;
        }
        for (vhost, q) in queues {
            self.sample(name, &[("vhost", vhost), ("queue", &q.name)], value(q));
        }
    }
}

/// Escapes a label value: backslash, double quote and newline.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// `GET /metrics`: queue metrics as totals.
pub(super) async fn metrics(State(api): State<Arc<Api>>) -> impl IntoResponse {
    exposition(&api, false).await
}

/// `GET /metrics/per-object`: queue metrics per queue.
pub(super) async fn per_object(State(api): State<Arc<Api>>) -> impl IntoResponse {
    exposition(&api, true).await
}

async fn exposition(api: &Api, per_object: bool) -> impl IntoResponse {
    let broker = api.broker.clone();
    let connections = api.wire.connection_count();
    let text = tokio::task::spawn_blocking(move || render(&broker, connections, per_object))
        .await
        .unwrap_or_default();
    ([(CONTENT_TYPE, TEXT_FORMAT)], text)
}

/// Writes every metric.
fn render(broker: &crate::Broker, connections: usize, per_object: bool) -> String {
    let mut queues: Vec<(String, QueueStats)> = Vec::new();
    let mut exchanges: Vec<ExchangeStats> = Vec::new();
    for vhost in broker.vhosts() {
        for q in broker.list_queues(&vhost).unwrap_or_default() {
            queues.push((vhost.clone(), q));
        }
        exchanges.extend(broker.list_exchanges(&vhost).unwrap_or_default());
    }
    let sys = System::now();
    let stats = broker.stats();
    let mut m = Exposition {
        out: String::new(),
        per_object,
    };
    let q = &queues;
    m.per_queue(
        "rabbitmq_queue_messages_ready",
        "gauge",
        "Messages ready to be delivered to consumers",
        q,
        |q| q.messages_ready as u64,
    );
    m.per_queue(
        "rabbitmq_queue_messages_unacked",
        "gauge",
        "Messages delivered to consumers but not yet acknowledged",
        q,
        |q| q.messages_unacknowledged as u64,
    );
    m.per_queue(
        "rabbitmq_queue_messages",
        "gauge",
        "Sum of ready and unacknowledged messages - total queue depth",
        q,
        |q| q.messages() as u64,
    );
    m.per_queue(
        "rabbitmq_queue_consumers",
        "gauge",
        "Consumers on a queue",
        q,
        |q| q.consumers as u64,
    );
    m.per_queue(
        "rabbitmq_queue_messages_published_total",
        "counter",
        "Total number of messages published to queues",
        q,
        |q| q.messages_published,
    );
    m.per_queue(
        "rabbitmq_queue_messages_delivered_total",
        "counter",
        "Total number of messages delivered to consumers",
        q,
        |q| q.messages_delivered + q.messages_got,
    );
    m.per_queue(
        "rabbitmq_queue_messages_redelivered_total",
        "counter",
        "Total number of messages redelivered to consumers",
        q,
        |q| q.messages_redelivered,
    );
    m.per_queue(
        "rabbitmq_queue_messages_acked_total",
        "counter",
        "Total number of messages acknowledged by consumers",
        q,
        |q| q.messages_acked,
    );

    let sum_q = |f: fn(&QueueStats) -> u64| queues.iter().map(|(_, q)| f(q)).sum::<u64>();
    let sum_e = |f: fn(&ExchangeStats) -> u64| exchanges.iter().map(f).sum::<u64>();
    let globals: [(&str, &str, u64); 7] = [
        ("rabbitmq_global_messages_received_total", "Total number of messages received from publishers", sum_e(|e| e.published)),
        ("rabbitmq_global_messages_routed_total", "Total number of messages routed to queues or streams", sum_e(|e| e.routed)),
        ("rabbitmq_global_messages_unroutable_dropped_total", "Total number of messages published as non-mandatory into an exchange and dropped as unroutable", sum_e(|e| e.unroutable)),
        ("rabbitmq_global_messages_unroutable_returned_total", "Total number of messages published as mandatory into an exchange and returned to the publisher as unroutable", sum_e(|e| e.returned)),
        ("rabbitmq_global_messages_delivered_total", "Total number of messages delivered to consumers", sum_q(|q| q.messages_delivered + q.messages_got)),
        ("rabbitmq_global_messages_redelivered_total", "Total number of messages redelivered to consumers", sum_q(|q| q.messages_redelivered)),
        ("rabbitmq_global_messages_acknowledged_total", "Total number of messages acknowledged by consumers", sum_q(|q| q.messages_acked)),
    ];
    for (name, help, value) in globals {
        m.family(name, "counter", help);
        m.sample(name, &[("protocol", "amqp091")], value);
    }

    let gauges: [(&str, &str, u64); 9] = [
        (
            "rabbitmq_connections",
            "Connections currently open",
            connections as u64,
        ),
        ("rabbitmq_queues", "Queues available", queues.len() as u64),
        (
            "rabbitmq_consumers",
            "Consumers currently connected",
            sum_q(|q| q.consumers as u64),
        ),
        (
            "rabbitmq_process_resident_memory_bytes",
            "Memory used in bytes",
            sys.resident_bytes,
        ),
        (
            "rabbitmq_resident_memory_limit_bytes",
            "Memory high watermark in bytes",
            stats.memory_high_watermark.map_or(0, |w| w as u64),
        ),
        (
            "rabbitmq_disk_space_available_bytes",
            "Disk space available in bytes",
            stats.disk_free.unwrap_or(0),
        ),
        (
            "rabbitmq_disk_space_available_limit_bytes",
            "Free disk space low watermark in bytes",
            stats.disk_free_limit,
        ),
        (
            "rabbitmq_process_open_fds",
            "Open file descriptors",
            sys.fds_open,
        ),
        (
            "rabbitmq_process_max_fds",
            "Open file descriptors limit",
            sys.fds_limit,
        ),
    ];
    for (name, help, value) in gauges {
        m.family(name, "gauge", help);
        m.sample(name, &[], value);
    }
    let alarms = [
        (
            "rabbitmq_alarms_memory_used_watermark",
            "is 1 if VM memory watermark alarm is in effect",
            stats.memory_alarm,
        ),
        (
            "rabbitmq_alarms_free_disk_space_watermark",
            "is 1 if free disk space watermark alarm is in effect",
            stats.disk_alarm,
        ),
        // Warren raises no file descriptor alarm: its listener retries accepts instead.
        (
            "rabbitmq_alarms_file_descriptor_limit",
            "is 1 if file descriptor limit alarm is in effect",
            false,
        ),
    ];
    for (name, help, on) in alarms {
        m.family(name, "gauge", help);
        m.sample(name, &[], u8::from(on));
    }
    m.out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
