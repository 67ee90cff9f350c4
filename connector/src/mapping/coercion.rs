//! Coercion: a cell's value to the attribute's wire type, times to Unix seconds, text forms.

use std::borrow::Cow;

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, SecondsFormat, Utc};

use crate::calendar;
use crate::config::{AttrType, NullPolicy};
use crate::quote::debug;
use crate::record::Number;

use super::cells::{value, Value};
use super::writer::RowWriter;

/// Integers at or above this are read as epoch milliseconds (13 digits).
const MILLIS_THRESHOLD: i64 = 100_000_000_000;

pub(super) fn fmt_secs(secs: i64) -> String {
    DateTime::<Utc>::from_timestamp(secs, 0)
        .map(|d| d.to_rfc3339_opts(SecondsFormat::Secs, true))
        .unwrap_or_else(|| secs.to_string())
}

pub(super) fn epoch_number(v: i64) -> i64 {
    if v.unsigned_abs() >= MILLIS_THRESHOLD.unsigned_abs() {
        v.div_euclid(1000)
    } else {
        v
    }
}

pub(super) fn created_at_secs(v: Value<'_>) -> Result<i64, String> {
    match v {
        Value::Null => Err("createdAt is null".into()),
        Value::Timestamp { secs, .. } => Ok(secs),
        Value::Date(days) => Ok(days * 86_400),
        Value::Int(i) => Ok(epoch_number(i)),
        Value::UInt(u) => i64::try_from(u)
            .map(epoch_number)
            .map_err(|_| format!("createdAt {u} is out of range")),
        Value::Str(s) => match parse_time_text(s.trim()) {
            Some(secs) => Ok(secs),
            None => Err(format!("createdAt {} is not a timestamp, a date or epoch seconds", debug(&s))),
        },
        Value::Invalid(why) => Err(why),
        other => Err(format!("createdAt {} is not a time", debug(&other))),
    }
}

pub(super) fn parse_time_text(s: &str) -> Option<i64> {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse::<i64>().ok().map(epoch_number);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.timestamp());
    }
    for fmt in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, fmt) {
            return Some(t.and_utc().timestamp());
        }
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .map(|d| d.and_hms_opt(0, 0, 0).map(|t| t.and_utc().timestamp()).unwrap_or(0))
}

/// A time a record can carry: from 0001-01-01 to 9999-12-31.
fn instant(secs: i64, nanos: u32) -> Result<DateTime<Utc>, String> {
    match calendar::secs_in_range(secs) {
        true => DateTime::<Utc>::from_timestamp(secs, nanos).ok_or_else(|| calendar::outside(&calendar::timestamp_text(secs, nanos))),
        false => Err(calendar::outside(&calendar::timestamp_text(secs, nanos))),
    }
}

/// A date as `YYYY-MM-DD`, if it has that form.
fn write_date(days: i64, out: &mut String) -> Result<(), String> {
    use std::fmt::Write;
    let date = DateTime::<Utc>::from_timestamp(days.saturating_mul(86_400), 0)
        .filter(|_| calendar::day_in_range(days))
        .ok_or_else(|| calendar::outside(&calendar::date_text(days)))?;
    let _ = write!(out, "{}", date.format("%Y-%m-%d"));
    Ok(())
}

pub(super) fn number_text(n: Number) -> String {
    match n {
        Number::Int(i) => i.to_string(),
        Number::Float(f) => f.to_string(),
    }
}

/// A scalar as text; `Str` is borrowed, the rest are written into `out`.
pub(super) fn to_text<'v>(v: &'v Value<'_>, out: &'v mut String) -> Result<&'v str, String> {
    use std::fmt::Write;
    out.clear();
    match v {
        Value::Str(s) => return Ok(s),
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::UInt(u) => {
            let _ = write!(out, "{u}");
        }
        Value::Float(f) => out.push_str(&number_text(Number::from_f64(*f).ok_or_else(|| format!("{f} has no JSON form"))?)),
        Value::Decimal(d, s) if *s > 0 => out.push_str(&crate::record::decimal_text(*d, *s as u32)),
        // An integral decimal, digit for digit: through a float, a 38-digit id would lose its tail.
        Value::Decimal(0, _) => out.push('0'),
        Value::Decimal(d, s) => {
            let _ = write!(out, "{d}");
            out.extend(std::iter::repeat_n('0', usize::from(s.unsigned_abs())));
        }
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Date(days) => write_date(*days, out)?,
        Value::Timestamp { secs, nanos } => out.push_str(&instant(*secs, *nanos)?.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
        Value::Invalid(why) => return Err(why.clone()),
        Value::Null | Value::List(..) => return Err("not a scalar".into()),
    }
    Ok(out)
}

pub(super) fn to_number(v: Value<'_>) -> Result<Number, String> {
    match v {
        Value::Int(i) => Ok(Number::Int(i)),
        Value::UInt(u) => Ok(Number::from_u64(u)),
        Value::Float(f) => Number::from_f64(f).ok_or_else(|| format!("{f} is not a finite number")),
        Value::Decimal(d, s) => Number::from_decimal(d, s).ok_or_else(|| "decimal out of range".into()),
        Value::Str(s) => s
            .trim()
            .parse::<f64>()
            .ok()
            .and_then(Number::from_f64)
            .ok_or_else(|| format!("cannot read {} as a number", debug(&s))),
        Value::Invalid(why) => Err(why),
        other => Err(format!("cannot read {} as a number", debug(&other))),
    }
}

pub(super) fn to_bool(v: Value<'_>) -> Result<bool, String> {
    match v {
        Value::Bool(b) => Ok(b),
        Value::Int(0) | Value::UInt(0) => Ok(false),
        Value::Int(1) | Value::UInt(1) => Ok(true),
        Value::Str(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "t" | "yes" | "y" | "1" => Ok(true),
            "false" | "f" | "no" | "n" | "0" => Ok(false),
            _ => Err(format!("cannot read {} as a boolean", debug(&s))),
        },
        Value::Invalid(why) => Err(why),
        other => Err(format!("cannot read {} as a boolean", debug(&other))),
    }
}

/// A date as `YYYY-MM-DD`, a time as RFC 3339 UTC to the second; text must read as either.
pub(super) fn to_date<'v>(v: &'v Value<'_>, out: &'v mut String) -> Result<&'v str, String> {
    out.clear();
    let time = |secs: i64, out: &mut String| -> Result<(), String> {
        out.push_str(&instant(secs, 0)?.to_rfc3339_opts(SecondsFormat::Secs, true));
        Ok(())
    };
    match v {
        Value::Date(days) => write_date(*days, out)?,
        Value::Timestamp { secs, .. } => time(*secs, out)?,
        Value::Invalid(why) => return Err(why.clone()),
        Value::Str(s) => {
            let s = s.trim();
            if let Ok(date) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
                let days = i64::from(date.num_days_from_ce()) + calendar::FIRST_DAY - 1;
                write_date(days, out)?;
            } else if s.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!("cannot read {} as a date: digits alone are not a date", debug(&s)));
            } else {
                let secs = parse_time_text(s).ok_or_else(|| format!("cannot read {} as a date or a time", debug(&s)))?;
                time(secs, out)?;
            }
        }
        other => return Err(format!("cannot read {} as a date", debug(other))),
    }
    Ok(out)
}

pub(super) fn item(v: Value<'_>, target: AttrType, sink: &mut impl RowWriter, text: &mut String) -> Result<(), String> {
    match target {
        AttrType::String => sink.str_item(to_text(&v, text)?),
        AttrType::Number => sink.num_item(to_number(v)?),
        AttrType::Boolean => sink.bool_item(to_bool(v)?),
        AttrType::Date => sink.str_item(to_date(&v, text)?),
    }
    Ok(())
}

/// Writes a cell as attribute `name`; a null under `nulls: skip` writes nothing.
pub(super) fn coerce(
    v: Value<'_>,
    name: &str,
    target: AttrType,
    split: Option<&str>,
    nulls: NullPolicy,
    sink: &mut impl RowWriter,
    text: &mut String,
) -> Result<(), String> {
    match v {
        Value::Null => {
            if nulls == NullPolicy::Send {
                sink.begin_attr(name, target);
                sink.end_attr();
            }
            return Ok(());
        }
        Value::List(items, start, end) => {
            sink.begin_attr(name, target);
            for i in start..end {
                match value(items, i) {
                    Value::Null => {}
                    v => item(v, target, sink, text)?,
                }
            }
        }
        Value::Str(s) if split.is_some() => {
            sink.begin_attr(name, target);
            for part in s.split(split.unwrap_or(",")).map(str::trim).filter(|p| !p.is_empty()) {
                item(Value::Str(Cow::Borrowed(part)), target, sink, text)?;
            }
        }
        scalar => {
            sink.begin_attr(name, target);
            item(scalar, target, sink, text)?;
        }
    }
    sink.end_attr();
    Ok(())
}
