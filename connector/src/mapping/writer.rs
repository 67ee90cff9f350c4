//! Where the row engine writes a row: into a [`Record`], or straight into the canonical hash.

use crate::config::pii::hmac_sha256;
use crate::config::secret::SecretString;
use crate::config::AttrType;
use crate::hash::Encoder;
use crate::record::{AttrValue, Number, Record};

/// Where [`CompiledMapping::map_row`] writes a row: into a [`Record`], or
/// straight into the canonical hash. One mapping routine feeds both, so the
/// hash of a row is by construction the hash of the record that is sent.
pub(super) trait RowWriter {
    fn begin(&mut self, id: &str, created_at: i64);
    fn begin_attr(&mut self, name: &str, target: AttrType);
    fn str_item(&mut self, s: &str);
    fn num_item(&mut self, n: Number);
    fn bool_item(&mut self, b: bool);
    fn end_attr(&mut self);

    fn constant(&mut self, name: &str, value: &AttrValue) {
        match value {
            AttrValue::S(items) => {
                self.begin_attr(name, AttrType::String);
                items.iter().for_each(|s| self.str_item(s));
            }
            AttrValue::N(items) => {
                self.begin_attr(name, AttrType::Number);
                items.iter().for_each(|n| self.num_item(*n));
            }
            AttrValue::B(items) => {
                self.begin_attr(name, AttrType::Boolean);
                items.iter().for_each(|b| self.bool_item(*b));
            }
            AttrValue::D(items) => {
                self.begin_attr(name, AttrType::Date);
                items.iter().for_each(|s| self.str_item(s));
            }
        }
        self.end_attr();
    }
}

#[derive(Default)]
pub(super) struct RecordBuilder {
    record: Option<Record>,
}

impl RecordBuilder {
    pub(super) fn take(&mut self) -> Record {
        self.record.take().unwrap_or(Record {
            id: String::new(),
            created_at: 0,
            attributes: Vec::new(),
        })
    }

    pub(super) fn current(&mut self) -> Option<&mut AttrValue> {
        self.record.as_mut().and_then(|r| r.attributes.last_mut()).map(|(_, v)| v)
    }
}

impl RowWriter for RecordBuilder {
    fn begin(&mut self, id: &str, created_at: i64) {
        self.record = Some(Record {
            id: id.to_string(),
            created_at,
            attributes: Vec::new(),
        });
    }

    fn begin_attr(&mut self, name: &str, target: AttrType) {
        if let Some(r) = self.record.as_mut() {
            r.attributes.push((name.to_string(), empty(target)));
        }
    }

    fn str_item(&mut self, s: &str) {
        if let Some(AttrValue::S(items) | AttrValue::D(items)) = self.current() {
            items.push(s.to_string());
        }
    }

    fn num_item(&mut self, n: Number) {
        if let Some(AttrValue::N(items)) = self.current() {
            items.push(n);
        }
    }

    fn bool_item(&mut self, b: bool) {
        if let Some(AttrValue::B(items)) = self.current() {
            items.push(b);
        }
    }

    fn end_attr(&mut self) {}
}

#[derive(Default)]
pub(super) struct HashWriter {
    pub id: String,
    pub encoder: Encoder,
}

impl RowWriter for HashWriter {
    fn begin(&mut self, id: &str, created_at: i64) {
        self.id.clear();
        self.id.push_str(id);
        self.encoder.begin(id, created_at);
    }

    fn begin_attr(&mut self, name: &str, target: AttrType) {
        let tag = match target {
            AttrType::String => b's',
            AttrType::Number => b'n',
            AttrType::Boolean => b'b',
            AttrType::Date => b'd',
        };
        self.encoder.begin_attr(name, tag);
    }

    fn str_item(&mut self, s: &str) {
        self.encoder.str_item(s);
    }

    fn num_item(&mut self, n: Number) {
        self.encoder.num_item(n);
    }

    fn bool_item(&mut self, b: bool) {
        self.encoder.bool_item(b);
    }

    fn end_attr(&mut self) {
        self.encoder.end_attr();
    }
}

/// Writes each text item as its HMAC-SHA256 under the salt instead: the raw value goes no further.
pub(super) struct Hashed<'a, W> {
    pub inner: &'a mut W,
    pub salt: &'a SecretString,
}

impl<W: RowWriter> RowWriter for Hashed<'_, W> {
    fn begin(&mut self, id: &str, created_at: i64) {
        self.inner.begin(id, created_at);
    }

    fn begin_attr(&mut self, name: &str, target: AttrType) {
        self.inner.begin_attr(name, target);
    }

    fn str_item(&mut self, s: &str) {
        self.inner.str_item(&hmac_sha256(self.salt, s));
    }

    fn num_item(&mut self, n: Number) {
        self.inner.num_item(n);
    }

    fn bool_item(&mut self, b: bool) {
        self.inner.bool_item(b);
    }

    fn end_attr(&mut self) {
        self.inner.end_attr();
    }
}

pub(super) fn empty(target: AttrType) -> AttrValue {
    match target {
        AttrType::String => AttrValue::S(Vec::new()),
        AttrType::Number => AttrValue::N(Vec::new()),
        AttrType::Boolean => AttrValue::B(Vec::new()),
        AttrType::Date => AttrValue::D(Vec::new()),
    }
}
