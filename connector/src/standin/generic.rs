//! A generic endpoint for the `http` destination (issue 32), so that a templated mapping can be
//! tried locally: `POST`, `PUT` or `PATCH /http/{any path}` with a JSON body is kept as it came
//! and answered 200; `DELETE /http/{any path}` is kept and answered 204. `GET /records/http`
//! lists what was kept, oldest first (the latest [`KEPT`]). A body that is not JSON is refused
//! with a 400 that says where it stops being JSON.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::{json, Value};

use super::Shared;

/// How many requests the generic endpoint keeps; older ones are dropped first.
pub(super) const KEPT: usize = 10_000;

/// One request the generic endpoint took.
#[derive(Clone, Debug, Serialize)]
pub struct HttpReceived {
    pub method: String,
    /// The path after `/http/`, as it came (percent-encoding kept).
    pub path: String,
    /// `null` for a delete.
    pub body: Value,
    /// Milliseconds since the stand-in started.
    pub received_ms: u64,
}

pub(super) async fn receive(State(shared): State<Arc<Shared>>, method: Method, uri: Uri, body: Bytes) -> Response {
    // The raw path: a decoded one would not show whether an id's `/` was encoded.
    let path = uri.path().strip_prefix("/http/").unwrap_or(uri.path()).to_string();
    let parsed = match method {
        Method::DELETE => Value::Null,
        _ => match serde_json::from_slice::<Value>(&body) {
            Ok(value) => value,
            Err(e) => {
                let message = format!("the body is not JSON: {e}");
                return (StatusCode::BAD_REQUEST, Json(json!({ "error": message }))).into_response();
            }
        },
    };
    let received = HttpReceived {
        method: method.to_string(),
        path,
        body: parsed,
        received_ms: shared.since_start_ms(),
    };
    let mut inner = shared.lock();
    if inner.http.len() >= KEPT {
        inner.http.pop_front();
    }
    inner.http.push_back(received);
    match method {
        Method::DELETE => StatusCode::NO_CONTENT.into_response(),
        _ => Json(json!({ "received": true })).into_response(),
    }
}
