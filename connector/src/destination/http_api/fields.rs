//! A record's fields as the `http` destination's `body` sees them, `r.fields`: JSON strings,
//! numbers, booleans, and lists where the mapping says `list: true`. Dates and timestamps are
//! already text (`YYYY-MM-DD`, RFC 3339 UTC to the second with `Z`), as the profiles destination
//! sends them. A field the row had no value for is in the record only under `nulls: send`, and
//! renders as `null`.

use std::collections::HashSet;

use serde_json::{json, Map, Value};

use crate::record::{AttrValue, Record};

/// `record`'s fields by name; `lists` names the fields declared `list: true`.
pub fn render(record: &Record, lists: &HashSet<String>) -> Map<String, Value> {
    record
        .attributes
        .iter()
        .map(|(name, value)| {
            let mut items = match value {
                AttrValue::S(v) | AttrValue::D(v) => v.iter().map(|s| json!(s)).collect::<Vec<_>>(),
                AttrValue::N(v) => v.iter().map(|n| json!(n)).collect(),
                AttrValue::B(v) => v.iter().map(|b| json!(b)).collect(),
            };
            let rendered = match (lists.contains(name), items.len()) {
                (true, _) => Value::Array(items),
                (false, 0) => Value::Null,
                // The mapping gives a field that is not a list at most one value.
                (false, _) => items.swap_remove(0),
            };
            (name.clone(), rendered)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Number;

    #[test]
    fn fields_render_as_json_scalars_lists_and_nulls() {
        let record = Record {
            id: "u-1".into(),
            created_at: 0,
            attributes: vec![
                ("active".into(), AttrValue::B(vec![true])),
                ("arr".into(), AttrValue::N(vec![Number::from_f64(1234.5).expect("finite")])),
                ("plan".into(), AttrValue::S(vec!["pro".into()])),
                ("signed_up".into(), AttrValue::D(vec!["2024-02-29".into()])),
                ("tags".into(), AttrValue::S(vec!["beta".into()])),
                ("team".into(), AttrValue::S(vec![])),
                ("seen".into(), AttrValue::D(vec!["2026-12-08T01:02:03Z".into()])),
            ],
        };
        let lists: HashSet<String> = ["tags".to_string()].into();
        assert_eq!(
            Value::Object(render(&record, &lists)),
            json!({
                "active": true,
                "arr": 1234.5,
                "plan": "pro",
                "signed_up": "2024-02-29",
                "tags": ["beta"],
                "team": null,
                "seen": "2026-12-08T01:02:03Z"
            })
        );
    }
}
