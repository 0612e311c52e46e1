//! `GET /`: a small HTML page listing each vhost's queues and exchanges with their counts
//! (the vhosts the user sees).

use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::{Extension, State};
use axum::response::Html;

use super::auth::ApiUser;
use super::server::Api;
use super::visibility;

/// Escapes text for HTML.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The page, with the vhosts the user sees (see `visibility`).
pub(super) async fn index(
    State(api): State<Arc<Api>>,
    Extension(user): Extension<ApiUser>,
) -> Html<String> {
    let broker = &api.broker;
    let mut page = String::from(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Warren</title>\
         <style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin-bottom:1.5em}\
         td,th{border:1px solid #ccc;padding:.2em .6em;text-align:left}td.n{text-align:right}</style>\
         </head><body>\n",
    );
    let _ = writeln!(
        page,
        "<h1>Warren {}</h1><p>Node {} &middot; AMQP on {} &middot; {} connections &middot; \
         <a href=\"/api/overview\">/api/overview</a> &middot; <a href=\"/metrics\">/metrics</a></p>",
        env!("CARGO_PKG_VERSION"),
        escape(&api.node),
        api.amqp_addr,
        api.wire.connection_count()
    );
    for vhost in visibility::vhosts_of(broker, &user) {
        let _ = writeln!(page, "<h2>vhost {}</h2>", escape(&vhost));
        page.push_str(
            "<table><tr><th>queue</th><th>ready</th><th>unacked</th><th>total</th>\
             <th>consumers</th><th>durable</th></tr>\n",
        );
        for q in broker.list_queues(&vhost).unwrap_or_default() {
            let _ = writeln!(
                page,
                "<tr><td>{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td>\
                 <td class=n>{}</td><td>{}</td></tr>",
                escape(&q.name),
                q.messages_ready,
                q.messages_unacknowledged,
                q.messages(),
                q.consumers,
                q.durable
            );
        }
        page.push_str(
            "</table>\n<table><tr><th>exchange</th><th>type</th><th>bindings</th>\
             <th>published</th><th>routed</th><th>unroutable</th></tr>\n",
        );
        for e in broker.list_exchanges(&vhost).unwrap_or_default() {
            let name = if e.name.is_empty() {
                "(AMQP default)"
            } else {
                e.name.as_str()
            };
            let _ = writeln!(
                page,
                "<tr><td>{}</td><td>{}</td><td class=n>{}</td><td class=n>{}</td>\
                 <td class=n>{}</td><td class=n>{}</td></tr>",
                escape(name),
                escape(e.kind.as_str()),
                e.bindings,
                e.published,
                e.routed,
                e.unroutable + e.returned
            );
        }
        page.push_str("</table>\n");
    }
    page.push_str("</body></html>\n");
    Html(page)
}
