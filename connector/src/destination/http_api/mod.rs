//! The `http` destination (issue 32): any HTTP API, the request described in the mapping with
//! templates. Built in steps; so far its templates (`template.rs`) and its headers' rules
//! (`headers.rs`), which `ebb validate`, `preview` and delivery will share. It is not yet a
//! destination a mapping can name.

pub mod headers;
pub mod template;
