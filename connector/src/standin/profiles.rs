//! The profiles contract, as the stand-in serves it: `POST /users/import` with
//! `Authorization: Token <token>` and `{"users":[…]}` (1 to 100 users, 1 MB), each user
//! checked field by field. A request with any bad user gets a 403 listing every user's
//! messages and applies nothing; a good one replaces each profile's name, and its properties
//! and segments where they are sent (a key left out keeps the old value).
//! `DELETE /users/{email}` answers 204, or 404 for no such profile.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::{json, Map, Value};

use super::webhooks::{injected_failure, scripted_fault};
use super::{InFlight, Refused, Shared};
use crate::destination::profiles::{MAX_BYTES, MAX_RECORDS};
use crate::quote::quote;

/// A profile as the stand-in holds it.
#[derive(Clone, Debug, Default, Serialize)]
pub struct HeldProfile {
    pub email: String,
    pub name: String,
    /// `[{"name","type","value"}]`, as last sent.
    pub properties: Vec<Value>,
    pub segments: Vec<String>,
    #[serde(rename = "receivedCount")]
    pub received_count: u64,
}

fn fail(status: StatusCode, msg: impl Into<String>) -> Refused {
    Box::new((status, Json(json!({ "error": msg.into() }))).into_response())
}

pub(super) async fn import(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let mut in_flight = InFlight::start(&shared, &headers, &body);
    let response = handle(&shared, &headers, &body).unwrap_or_else(|refusal| *refusal);
    in_flight.answer(response).await
}

fn handle(shared: &Shared, headers: &HeaderMap, body: &[u8]) -> Result<Response, Refused> {
    scripted_fault(shared)?;
    authorised(shared, headers)?;
    injected_failure(shared, "profiles")?;
    if body.len() > MAX_BYTES {
        return Err(fail(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("body is {} bytes; the limit is {MAX_BYTES}", body.len()),
        ));
    }
    let users = users_of(headers, body)?;
    let refused = shared.lock().refused.clone();
    let errors: Vec<Vec<String>> = users.iter().map(|u| check_user(u, &refused)).collect();
    if errors.iter().any(|e| !e.is_empty()) {
        return Ok((StatusCode::FORBIDDEN, Json(json!({ "errors": errors }))).into_response());
    }
    Ok(apply(shared, &users))
}

fn authorised(shared: &Shared, headers: &HeaderMap) -> Result<(), Refused> {
    let expected = format!("Token {}", shared.config.profiles_token);
    match headers.get("authorization").and_then(|v| v.to_str().ok()) {
        Some(given) if given == expected => Ok(()),
        Some(_) => Err(fail(StatusCode::UNAUTHORIZED, "invalid token")),
        None => Err(fail(StatusCode::UNAUTHORIZED, "missing `Authorization: Token <token>` header")),
    }
}

/// The body's `users` list, checked for shape and length.
fn users_of(headers: &HeaderMap, body: &[u8]) -> Result<Vec<Map<String, Value>>, Refused> {
    let bad = |msg: String| fail(StatusCode::BAD_REQUEST, msg);
    let is_json = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !is_json {
        return Err(bad("content-type must be application/json".into()));
    }
    let parsed: Value = serde_json::from_slice(body).map_err(|e| bad(format!("body is not JSON: {e}")))?;
    let Value::Object(mut top) = parsed else {
        return Err(bad("body must be a JSON object".into()));
    };
    if let Some(other) = top.keys().find(|k| k.as_str() != "users") {
        return Err(bad(format!("unexpected key {}; this endpoint takes `users`", quote(other))));
    }
    let Some(Value::Array(users)) = top.remove("users") else {
        return Err(bad("`users` is required and must be an array".into()));
    };
    if users.is_empty() || users.len() > MAX_RECORDS {
        return Err(bad(format!("{} users in one request; send 1 to {MAX_RECORDS}", users.len())));
    }
    users
        .into_iter()
        .enumerate()
        .map(|(i, u)| match u {
            Value::Object(map) => Ok(map),
            _ => Err(bad(format!("users[{i}] must be an object"))),
        })
        .collect()
}

/// Every problem with one user; empty if it is good.
fn check_user(user: &Map<String, Value>, refused: &HashSet<String>) -> Vec<String> {
    let mut errors = Vec::new();
    for key in user
        .keys()
        .filter(|k| !matches!(k.as_str(), "email" | "name" | "properties" | "segments"))
    {
        errors.push(format!("unexpected field {}", quote(key)));
    }
    match user.get("email").and_then(Value::as_str) {
        Some(email) => {
            errors.extend(email_problem(email));
            if refused.contains(email) {
                errors.push("refused by the stand-in".into());
            }
        }
        None => errors.push("`email` is required and must be a string".into()),
    }
    match user.get("name").and_then(Value::as_str) {
        Some(name) if !name.trim().is_empty() => {}
        _ => errors.push("`name` is required and must be a non-empty string".into()),
    }
    match user.get("properties") {
        None => {}
        Some(Value::Array(props)) => errors.extend(property_problems(props)),
        Some(_) => errors.push("`properties` must be an array".into()),
    }
    match user.get("segments") {
        None => {}
        Some(Value::Array(s)) if s.iter().all(Value::is_string) => {}
        Some(_) => errors.push("`segments` must be an array of strings".into()),
    }
    errors
}

fn email_problem(email: &str) -> Option<String> {
    let (local, domain) = email.split_once('@')?;
    let ok = !local.is_empty()
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && email.len() <= 254
        && !email.chars().any(char::is_whitespace)
        && email == email.to_lowercase();
    (!ok).then(|| format!("email {} is not a lower-case address", quote(email)))
}

fn property_problems(props: &[Value]) -> Vec<String> {
    let mut errors = Vec::new();
    let mut names = HashSet::new();
    for (i, prop) in props.iter().enumerate() {
        let at = format!("properties[{i}]");
        let Some(obj) = prop.as_object().filter(|o| o.len() == 3) else {
            errors.push(format!("{at} must be {{\"name\", \"type\", \"value\"}}"));
            continue;
        };
        let name = match obj.get("name").and_then(Value::as_str) {
            Some(n) if !n.is_empty() => n,
            _ => {
                errors.push(format!("{at}.name must be a non-empty string"));
                continue;
            }
        };
        if !names.insert(name.to_string()) {
            errors.push(format!("property {} is given twice", quote(name)));
        }
        let value = obj.get("value").unwrap_or(&Value::Null);
        let ok = match obj.get("type").and_then(Value::as_str) {
            Some("string") => value.is_string(),
            Some("number") => value.is_number(),
            Some("date") => value.as_str().is_some_and(is_date),
            _ => {
                errors.push(format!("property {}: type must be string, number or date", quote(name)));
                continue;
            }
        };
        if !ok {
            errors.push(format!("property {}: {value} is not a value of its type", quote(name)));
        }
    }
    errors
}

/// `YYYY-MM-DD`, or an RFC 3339 time in UTC (`…Z`).
fn is_date(text: &str) -> bool {
    chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").is_ok()
        || (text.ends_with('Z') && chrono::DateTime::parse_from_rfc3339(text).is_ok())
}

fn apply(shared: &Shared, users: &[Map<String, Value>]) -> Response {
    let mut inner = shared.lock();
    for user in users {
        let email = user.get("email").and_then(Value::as_str).unwrap_or_default().to_string();
        let held = inner.profiles.entry(email.clone()).or_default();
        held.email = email;
        held.name = user.get("name").and_then(Value::as_str).unwrap_or_default().to_string();
        if let Some(Value::Array(props)) = user.get("properties") {
            held.properties = props.clone();
        }
        if let Some(Value::Array(segments)) = user.get("segments") {
            held.segments = segments.iter().filter_map(|s| s.as_str().map(str::to_string)).collect();
        }
        held.received_count += 1;
    }
    inner.stats.accepted_requests += 1;
    inner.stats.records_received += users.len() as u64;
    (StatusCode::OK, Json(json!({ "imported": users.len() }))).into_response()
}

pub(super) async fn remove(State(shared): State<Arc<Shared>>, Path(email): Path<String>, headers: HeaderMap) -> Response {
    let mut in_flight = InFlight::start(&shared, &headers, email.as_bytes());
    let response = match scripted_fault(&shared).and_then(|()| authorised(&shared, &headers)) {
        Err(refusal) => *refusal,
        Ok(()) => match shared.lock().profiles.remove(&email) {
            Some(_) => StatusCode::NO_CONTENT.into_response(),
            None => fail(StatusCode::NOT_FOUND, format!("no profile {}", quote(&email))).into_response(),
        },
    };
    in_flight.answer(response).await
}

pub(super) fn held(profiles: &BTreeMap<String, HeldProfile>) -> Vec<HeldProfile> {
    profiles.values().cloned().collect()
}
