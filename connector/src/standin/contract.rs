//! Enterpret's webhook contract, as the stand-in checks each request against it: the body's
//! shape, each record's fields, `createdAt`'s range and each attribute's typed list.

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};

use crate::destination::enterpret::EARLIEST_CREATED_AT;
use crate::destination::enterpret::MAX_RECORDS;
use crate::quote::quote;

/// The body's `{"<list_key>": [...]}` list, checked for shape and length.
pub(super) fn records_of(list_key: &str, headers: &HeaderMap, body: &[u8]) -> Result<Vec<Value>, Refused> {
    let is_json = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !is_json {
        return Err(Box::new(invalid("content-type must be application/json")));
    }
    let parsed: Value = serde_json::from_slice(body).map_err(|e| Box::new(invalid(format!("body is not JSON: {e}"))))?;
    let Value::Object(mut top) = parsed else {
        return Err(Box::new(invalid("body must be a JSON object")));
    };
    if let Some(other) = top.keys().find(|k| k.as_str() != list_key) {
        return Err(Box::new(invalid(format!(
            "unexpected key {}; this endpoint takes `{list_key}`",
            quote(other)
        ))));
    }
    let list = match top.remove(list_key) {
        None => return Err(Box::new(missing(format!("`{list_key}` is required")))),
        Some(Value::Array(list)) => list,
        Some(_) => return Err(Box::new(invalid(format!("`{list_key}` must be an array")))),
    };
    if list.is_empty() {
        return Err(Box::new(invalid(format!("`{list_key}` is empty"))));
    }
    if list.len() > MAX_RECORDS {
        return Err(Box::new(invalid(format!(
            "{} records in one request; the limit is {MAX_RECORDS}",
            list.len()
        ))));
    }
    Ok(list)
}

pub(super) enum Refusal {
    Missing(String),
    Invalid(String),
}

impl Refusal {
    pub(super) fn respond(self, at: &str) -> Response {
        match self {
            Refusal::Missing(m) => missing(format!("{at}: {m}")),
            Refusal::Invalid(m) => invalid(format!("{at}: {m}")),
        }
    }
}

pub(super) struct Accepted {
    pub id: String,
    pub created_at: i64,
    pub attributes: Box<str>,
}

pub(super) fn check_record(record: &Value, now: i64) -> Result<Accepted, Refusal> {
    use Refusal::{Invalid, Missing};
    let Some(obj) = record.as_object() else {
        return Err(Invalid("must be an object".into()));
    };
    if let Some(other) = obj.keys().find(|k| !matches!(k.as_str(), "id" | "createdAt" | "attributes")) {
        return Err(Invalid(format!("unexpected field {}", quote(other))));
    }
    let id = match obj.get("id") {
        None => return Err(Missing("`id` is required".into())),
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(_) => return Err(Invalid("`id` must be a non-empty string".into())),
    };
    let created_at = match obj.get("createdAt") {
        None => return Err(Missing("`createdAt` is required".into())),
        Some(v) => match v.as_i64() {
            Some(t) if (EARLIEST_CREATED_AT..=now + 60).contains(&t) => t,
            Some(t) => {
                return Err(Invalid(format!(
                    "`createdAt` {t} must be between 2000-01-01 and now, in epoch seconds"
                )))
            }
            None => return Err(Invalid("`createdAt` must be an integer (epoch seconds)".into())),
        },
    };
    let attributes = match obj.get("attributes") {
        None => return Err(Missing("`attributes` is required".into())),
        Some(Value::Object(map)) => map,
        Some(_) => return Err(Invalid("`attributes` must be an object".into())),
    };
    for (name, value) in attributes {
        check_attribute(name, value).map_err(Invalid)?;
    }
    Ok(Accepted {
        id,
        created_at,
        attributes: serde_json::to_string(attributes).unwrap_or_default().into_boxed_str(),
    })
}

pub(super) fn check_attribute(name: &str, value: &Value) -> Result<(), String> {
    let name = &quote(name);
    let typed: &Map<String, Value> = value
        .as_object()
        .ok_or_else(|| format!("attribute {name} must be {{\"s\"|\"n\"|\"b\": [...]}}"))?;
    if typed.len() != 1 {
        return Err(format!("attribute {name} must have exactly one of `s`, `n`, `b`"));
    }
    let (tag, items) = typed.iter().next().ok_or_else(|| format!("attribute {name} is empty"))?;
    let items = items.as_array().ok_or_else(|| format!("attribute {name}.{tag} must be an array"))?;
    let ok = match tag.as_str() {
        "s" => items.iter().all(Value::is_string),
        "n" => items.iter().all(Value::is_number),
        "b" => items.iter().all(Value::is_boolean),
        other => return Err(format!("attribute {name} has unknown type `{other}`; use `s`, `n` or `b`")),
    };
    if ok {
        Ok(())
    } else {
        Err(format!("attribute {name}.{tag} holds a value of the wrong type"))
    }
}

pub(super) fn error(status: StatusCode, code: &str, msg: impl Into<String>) -> Response {
    let body = json!({ "msg": msg.into(), "code": code, "referenceID": format!("standin-{:08x}", rand::random::<u32>()) });
    (status, Json(body)).into_response()
}

pub(super) fn invalid(msg: impl Into<String>) -> Response {
    error(StatusCode::BAD_REQUEST, "ErrCodeInvalidRequestArgument", msg)
}

pub(super) fn missing(msg: impl Into<String>) -> Response {
    error(StatusCode::BAD_REQUEST, "ErrCodeMissingRequiredField", msg)
}

/// A request's refusal, boxed: a `Response` is too big to pass around in every `Err`.
pub(super) type Refused = Box<Response>;
