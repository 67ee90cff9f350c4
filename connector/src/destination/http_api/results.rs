//! The `http` destination's `results:`: where a 2xx reply lists one element per record, and
//! what each says. A record the reply acknowledges is committed; one whose element has an
//! `error` that is present and not null is a rejection, its message cut to 200 characters; one
//! the reply does not list is neither, so it is never marked synced and the next run sends it
//! again. Elements naming records that were not in the request are passed over.

use std::collections::HashMap;

use serde_json::Value;

use crate::quote::shorten;

/// The longest rejection message kept from a reply, in characters.
pub const MAX_REJECTION_CHARS: usize = 200;

/// `results:` as the mapping gives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResultsSpec {
    /// The dotted path to the list, as in `data.results`; empty for a reply that is the list.
    pub path: String,
    /// The element's field naming the record.
    pub id: String,
    /// The element's field that holds an error.
    pub error: String,
}

/// What a reply says of one record of the request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordResult {
    Acknowledged,
    Rejected(String),
    /// Not in the reply: not acknowledged, sent again by the next run.
    Missing,
}

/// What a 2xx reply says of each of `ids`, in their order; `Err` says why the reply cannot be
/// read, and then no record of the request is acknowledged.
pub fn read(spec: &ResultsSpec, body: &[u8], ids: &[&str]) -> Result<Vec<RecordResult>, String> {
    let reply: Value = serde_json::from_slice(body).map_err(|e| format!("the reply is not JSON: {e}"))?;
    let mut list = &reply;
    for step in spec.path.split('.').filter(|s| !s.is_empty()) {
        list = list
            .get(step)
            .ok_or_else(|| format!("the reply has no `{}` (results.path)", shorten(&spec.path, 80)))?;
    }
    let elements = list
        .as_array()
        .ok_or_else(|| format!("`{}` in the reply is not a list (results.path)", shorten(&spec.path, 80)))?;
    let mut said: HashMap<String, RecordResult> = HashMap::new();
    for element in elements {
        let Some(id) = element.get(&spec.id).and_then(id_text) else {
            continue;
        };
        let result = match element.get(&spec.error) {
            None | Some(Value::Null) => RecordResult::Acknowledged,
            Some(Value::String(message)) => RecordResult::Rejected(shorten(message, MAX_REJECTION_CHARS).into_owned()),
            Some(other) => RecordResult::Rejected(shorten(&other.to_string(), MAX_REJECTION_CHARS).into_owned()),
        };
        // An id listed twice counts as rejected if either element says so.
        match (said.get(&id), &result) {
            (Some(RecordResult::Rejected(_)), _) => {}
            _ => {
                said.insert(id, result);
            }
        }
    }
    Ok(ids
        .iter()
        .map(|id| said.get(*id).cloned().unwrap_or(RecordResult::Missing))
        .collect())
}

/// An element's id as text: a string as it is, a number as JSON writes it.
fn id_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(path: &str) -> ResultsSpec {
        ResultsSpec {
            path: path.into(),
            id: "external_id".into(),
            error: "error".into(),
        }
    }

    #[test]
    fn each_record_is_acknowledged_rejected_or_missing() {
        let long = "x".repeat(500);
        let body = serde_json::json!({"data": {"results": [
            {"external_id": "u-1", "error": null},
            {"external_id": "u-2", "error": "email is invalid"},
            {"external_id": 3, "error": {"code": 7}},
            {"external_id": "u-4", "error": long},
            {"external_id": "not-sent"},
            {"external_id": "u-1", "error": "second element: rejected"},
            "not an object"
        ]}});
        let got = read(
            &spec("data.results"),
            body.to_string().as_bytes(),
            &["u-1", "u-2", "3", "u-4", "u-5"],
        )
        .expect("read");
        assert_eq!(got[0], RecordResult::Rejected("second element: rejected".into()));
        assert_eq!(got[1], RecordResult::Rejected("email is invalid".into()));
        assert_eq!(got[2], RecordResult::Rejected("{\"code\":7}".into()));
        assert!(matches!(&got[3], RecordResult::Rejected(m) if m.starts_with(&"x".repeat(200)) && m.ends_with("(500 characters)")));
        assert_eq!(
            got[4],
            RecordResult::Missing,
            "a record the reply does not list is not acknowledged"
        );
        let plain = read(&spec(""), br#"[{"external_id": "a"}]"#, &["a"]).expect("a reply that is the list");
        assert_eq!(plain, [RecordResult::Acknowledged]);
    }

    #[test]
    fn a_reply_that_cannot_be_read_acknowledges_nothing() {
        let ids = ["a"];
        assert!(read(&spec("results"), b"<html>", &ids)
            .expect_err("not JSON")
            .starts_with("the reply is not JSON"));
        assert_eq!(
            read(&spec("results"), br#"{"data": []}"#, &ids).expect_err("no path"),
            "the reply has no `results` (results.path)"
        );
        assert_eq!(
            read(&spec("results"), br#"{"results": {}}"#, &ids).expect_err("not a list"),
            "`results` in the reply is not a list (results.path)"
        );
    }
}
