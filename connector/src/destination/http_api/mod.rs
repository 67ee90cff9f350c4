//! The `http` destination (issue 32): any HTTP API, the request described in the mapping with
//! templates. Built in steps; so far its templates (`template.rs`), its headers' rules
//! (`headers.rs`), a record's fields as the templates see them (`fields.rs`) and the per-record
//! results of a reply (`results.rs`), which `ebb validate`, `preview` and delivery will share.
//! It is not yet a destination a mapping can name.

pub mod fields;
pub mod headers;
pub mod results;
pub mod template;
