//! The canonical record: what a mapped row is, whatever the source was.
//!
//! Everything downstream of the mapping (hash, diff, destinations) sees only
//! these types: an identity, a created-at and typed values. Values are already
//! normalised here (integral floats become integers, `-0.0` becomes `0`,
//! attributes are sorted by name), so the hash and every destination's body
//! derive from one canonical form. No destination's wire form lives here: each
//! destination serialises records its own way.

use serde::{Serialize, Serializer};

/// A number as the destination will see it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Number {
    Int(i64),
    Float(f64),
}

impl Number {
    /// Canonical form: a float with an exact integer value is that integer,
    /// so `3`, `3.0` and decimal `3.00` are one value; NaN and infinities
    /// have no JSON form and are refused.
    pub fn from_f64(v: f64) -> Option<Number> {
        if !v.is_finite() {
            return None;
        }
        if v.fract() == 0.0 && v.abs() < 9.007_199_254_740_992e15 {
            return Some(Number::Int(v as i64));
        }
        Some(Number::Float(v))
    }

    pub fn from_u64(v: u64) -> Number {
        match i64::try_from(v) {
            Ok(i) => Number::Int(i),
            Err(_) => Number::Float(v as f64),
        }
    }

    /// A decimal given as its unscaled integer and scale.
    pub fn from_decimal(unscaled: i128, scale: i8) -> Option<Number> {
        if scale <= 0 {
            let factor = 10i128.checked_pow(u32::from(scale.unsigned_abs()))?;
            let v = unscaled.checked_mul(factor)?;
            return Some(i64::try_from(v).map(Number::Int).unwrap_or(Number::Float(v as f64)));
        }
        let factor = 10i128.checked_pow(scale as u32)?;
        if unscaled % factor == 0 {
            let v = unscaled / factor;
            return Some(i64::try_from(v).map(Number::Int).unwrap_or(Number::Float(v as f64)));
        }
        // Clinger's fast path: when the unscaled integer and the power of ten are both exact
        // in an f64, one IEEE division is correctly rounded, so it gives the nearest f64 to the
        // decimal, exactly as parsing its text would, without formatting it first.
        const EXACT_INT: u128 = 1 << 53;
        if unscaled.unsigned_abs() <= EXACT_INT && scale <= 22 {
            return Number::from_f64(unscaled as f64 / POWERS_OF_TEN[scale as usize]);
        }
        // Beyond it, the decimal text keeps 12.34 as 12.34 rather than the nearest f64 of an
        // inexact division.
        let text = decimal_text(unscaled, scale as u32);
        text.parse::<f64>().ok().and_then(Number::from_f64)
    }
}

/// The powers of ten that are exact in an f64.
const POWERS_OF_TEN: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

pub fn decimal_text(unscaled: i128, scale: u32) -> String {
    let digits = unscaled.unsigned_abs().to_string();
    let scale = scale as usize;
    let padded = if digits.len() <= scale {
        format!("{}{}", "0".repeat(scale - digits.len() + 1), digits)
    } else {
        digits
    };
    let (int, frac) = padded.split_at(padded.len() - scale);
    format!("{}{}.{}", if unscaled < 0 { "-" } else { "" }, int, frac)
}

impl Serialize for Number {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Number::Int(i) => s.serialize_i64(*i),
            Number::Float(f) => s.serialize_f64(*f),
        }
    }
}

/// A field's value: a list of one type. A destination whose values are scalars takes the
/// first item (the mapping gives such a field at most one).
#[derive(Clone, Debug, PartialEq)]
pub enum AttrValue {
    S(Vec<String>),
    N(Vec<Number>),
    B(Vec<bool>),
    /// Dates and times as text: `YYYY-MM-DD` for a date, RFC 3339 UTC to the second for a time.
    D(Vec<String>),
}

/// What a run asks of the destination for one identity.
#[derive(Clone, Debug, PartialEq)]
pub enum Change {
    /// Create the record, or update it.
    Upsert(Record),
    /// Delete what the destination holds under this id.
    Delete { id: String },
}

impl Change {
    pub fn id(&self) -> &str {
        match self {
            Change::Upsert(r) => &r.id,
            Change::Delete { id } => id,
        }
    }
}

/// One mapped row. `attributes` are its fields, sorted by name; each destination names them
/// in its own block of the mapping and reads them back by those names.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    /// The identity, normalised as the destination's capabilities ask (an email is lower-cased).
    pub id: String,
    /// Unix seconds; 0 when the destination takes no creation time.
    pub created_at: i64,
    pub attributes: Vec<(String, AttrValue)>,
}

impl Record {
    /// A record with only an identity, for tests of what is kept and acknowledged.
    #[cfg(test)]
    pub(crate) fn with_id(id: &str) -> Record {
        Record {
            id: id.into(),
            created_at: 0,
            attributes: Vec::new(),
        }
    }

    /// About how much memory the record holds, for keeping records within a budget.
    pub fn memory_bytes(&self) -> usize {
        let values: usize = self
            .attributes
            .iter()
            .map(|(name, value)| name.capacity() + value.heap_bytes())
            .sum();
        std::mem::size_of::<Record>()
            + self.id.capacity()
            + self.attributes.capacity() * std::mem::size_of::<(String, AttrValue)>()
            + values
    }
}

impl AttrValue {
    fn heap_bytes(&self) -> usize {
        let texts = |v: &Vec<String>| v.capacity() * std::mem::size_of::<String>() + v.iter().map(String::capacity).sum::<usize>();
        match self {
            AttrValue::S(v) | AttrValue::D(v) => texts(v),
            AttrValue::N(v) => v.capacity() * std::mem::size_of::<Number>(),
            AttrValue::B(v) => v.capacity(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_canonical() {
        assert_eq!(Number::from_f64(3.0), Some(Number::Int(3)));
        assert_eq!(Number::from_f64(-0.0), Some(Number::Int(0)));
        assert_eq!(Number::from_f64(f64::NAN), None);
        assert_eq!(Number::from_f64(f64::INFINITY), None);
        assert_eq!(Number::from_f64(0.1), Some(Number::Float(0.1)));
        assert_eq!(Number::from_decimal(1250, 2), Some(Number::Float(12.5)));
        assert_eq!(Number::from_decimal(10000, 2), Some(Number::Int(100)));
        assert_eq!(Number::from_decimal(-1, 2), Some(Number::Float(-0.01)));
        assert_eq!(Number::from_decimal(5, -2), Some(Number::Int(500)));
        assert_eq!(Number::from_u64(u64::MAX), Number::Float(u64::MAX as f64));
    }

    /// The fast path and the text path agree wherever the fast path is taken, and the slow path
    /// still serves what is beyond it.
    #[test]
    fn decimals_become_the_nearest_float_either_way() {
        let by_text = |unscaled: i128, scale: i8| decimal_text(unscaled, scale as u32).parse::<f64>().ok().and_then(Number::from_f64);
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..200_000 {
            // xorshift: unscaled values of every size up to 2^53, every scale up to 22.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let unscaled = ((x >> 11) as i128) >> (x % 53) as u32;
            let unscaled = if x & 1 == 1 { -unscaled } else { unscaled };
            let scale = (x % 23) as i8;
            assert_eq!(
                Number::from_decimal(unscaled, scale),
                by_text(unscaled, scale),
                "{unscaled} scale {scale}"
            );
        }
        assert_eq!(Number::from_decimal(1 << 53, 2), by_text(1 << 53, 2));
        let big = (1i128 << 60) + 7;
        assert_eq!(Number::from_decimal(big, 3), by_text(big, 3), "past 2^53, through the text");
        assert_eq!(Number::from_decimal(123_456, 25), by_text(123_456, 25), "a scale past 10^22");
    }
}
