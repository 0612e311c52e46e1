//! Request bodies, read up to the API's limit
//! ([`ManagementOptions::max_body_size`](crate::ManagementOptions::max_body_size)), as
//! RabbitMQ reads them (its `management.http.max_body_size`): a larger body is answered
//! `400 {"error":"bad_request","reason":"Exceeded HTTP request body size limit"}` and
//! never held in memory. The rest of it is read and dropped first (up to
//! [`DRAIN_MAX`] more bytes), so that the client reads the answer instead of a connection
//! reset by unread data.

use std::future::poll_fn;
use std::pin::Pin;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header::CONTENT_LENGTH;
use futures_core::Stream as _;

use super::error::ApiError;
use super::server::Api;

/// RabbitMQ's reason for a body over the limit.
pub(crate) const TOO_LARGE: &str = "Exceeded HTTP request body size limit";

/// How much of a body over the limit is read and dropped, beyond the limit, before the
/// answer; past it the connection is closed after the answer.
const DRAIN_MAX: u64 = 64 << 20;

/// A request body within the limit: what handlers that read one take as their last
/// argument.
pub(crate) struct Body(pub(crate) Bytes);

impl FromRequest<Arc<Api>> for Body {
    type Rejection = ApiError;

    async fn from_request(request: Request, api: &Arc<Api>) -> Result<Body, ApiError> {
        let limit = api.max_body_size as u64;
        let declared = (request.headers().get(CONTENT_LENGTH))
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let mut over = declared.is_some_and(|n| n > limit);
        let mut kept = Vec::with_capacity(if over {
            0
        } else {
            usize::try_from(declared.unwrap_or(0)).unwrap_or(0)
        });
        let mut received: u64 = 0;
        let mut stream = request.into_body().into_data_stream();
        while let Some(chunk) = poll_fn(|cx| Pin::new(&mut stream).poll_next(cx)).await {
            let chunk = chunk.map_err(|e| ApiError::bad_request(e.to_string()))?;
            received += chunk.len() as u64;
            if received > limit && !over {
                over = true;
                kept = Vec::new();
            }
            if !over {
                kept.extend_from_slice(&chunk);
            } else if received > limit.saturating_add(DRAIN_MAX) {
                break;
            }
        }
        if over {
            tracing::warn!(
                limit,
                received,
                declared,
                "management API request body over the limit; refused"
            );
            return Err(ApiError::bad_request(TOO_LARGE));
        }
        Ok(Body(Bytes::from(kept)))
    }
}
