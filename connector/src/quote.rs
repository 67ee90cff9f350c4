//! Values quoted back in messages, cut to a readable length.
//!
//! Errors and rejection reasons name what they are about: a column, a value, a
//! path, a sync. Those come from mapping files, from data and from HTTP
//! requests, and can be of any size; a 5 MB column name must not make a 5 MB
//! error, nor a 5 MB cell a 5 MB rejection stored a thousand times. Every value
//! a message quotes goes through here.

use std::borrow::Cow;
use std::fmt::Debug;

/// The most characters of one value a message shows.
pub const MAX_QUOTED_CHARS: usize = 80;
/// The most characters of a message from elsewhere (a parser's, a server's) that ebb passes on.
pub const MAX_MESSAGE_CHARS: usize = 1000;

/// `text` cut to `max` characters, with `…` for the rest.
pub fn shorten(text: &str, max: usize) -> Cow<'_, str> {
    match text.char_indices().nth(max) {
        None => Cow::Borrowed(text),
        Some((end, _)) => Cow::Owned(format!("{}… ({} characters)", &text[..end], text.chars().count())),
    }
}

/// `text` in backticks, cut to [`MAX_QUOTED_CHARS`].
pub fn quote(text: &str) -> String {
    format!("`{}`", shorten(text, MAX_QUOTED_CHARS))
}

/// The `Debug` form of a value (a string in double quotes, a number as is), cut to [`MAX_QUOTED_CHARS`].
pub fn debug(value: &impl Debug) -> String {
    shorten(&format!("{value:?}"), MAX_QUOTED_CHARS).into_owned()
}

/// A message from elsewhere with every backtick-quoted value in it cut to [`MAX_QUOTED_CHARS`],
/// and the whole cut to [`MAX_MESSAGE_CHARS`].
pub fn shorten_quoted(message: &str) -> String {
    let mut out = String::with_capacity(message.len().min(MAX_MESSAGE_CHARS + 64));
    let mut parts = message.split('`');
    if let Some(first) = parts.next() {
        out.push_str(first);
    }
    for (i, part) in parts.enumerate() {
        out.push('`');
        // Odd parts are between backticks.
        if i % 2 == 0 {
            out.push_str(&shorten(part, MAX_QUOTED_CHARS));
        } else {
            out.push_str(part);
        }
    }
    shorten(&out, MAX_MESSAGE_CHARS).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_values_are_untouched_and_long_ones_cut_on_a_character() {
        assert_eq!(quote("age"), "`age`");
        assert_eq!(shorten("abc", 3), "abc");
        assert_eq!(shorten("abcd", 3), "abc… (4 characters)");
        let long = "é".repeat(5_000_000);
        let q = quote(&long);
        assert!(q.len() < 200 && q.contains('…') && q.contains("5000000 characters"), "{q}");
        assert_eq!(debug(&"a\"b"), r#""a\"b""#);
        assert!(debug(&"x".repeat(1000)).len() < 120);
    }

    #[test]
    fn messages_from_elsewhere_have_their_quoted_values_cut() {
        let name = "c".repeat(10_000);
        let message = format!("unknown field `{name}`, expected one of `column`, `value`");
        let short = shorten_quoted(&message);
        assert!(short.len() < 250, "{short}");
        assert!(
            short.starts_with("unknown field `ccc") && short.ends_with("expected one of `column`, `value`"),
            "{short}"
        );
        assert_eq!(shorten_quoted("no quotes here"), "no quotes here");
        assert!(shorten_quoted(&"x".repeat(100_000)).len() < MAX_MESSAGE_CHARS + 40);
    }
}
