//! What the commands print: errors with their hints, a run's counts, wrapped text, JSON.

use std::process::ExitCode;

use crate::error::Error;
use crate::state;

/// Prints an error as `stage: message`, plus a hint, and picks the exit code.
pub(super) fn report(result: Result<ExitCode, Error>) -> ExitCode {
    match result {
        Ok(code) => code,
        Err(e) => {
            print_error(&e);
            ExitCode::FAILURE
        }
    }
}

pub(super) fn print_error(e: &Error) {
    match e {
        Error::Config(errors) => {
            for issue in &errors.0 {
                eprintln!("error: {issue}");
            }
        }
        other => eprintln!("error: {other}"),
    }
    if let Some(hint) = e.hint() {
        eprintln!("hint: {hint}");
    }
}

/// A run's counts: what it read and planned, then what came of what it sent.
fn counts_parts(c: &state::RunCounts) -> (String, String) {
    let some = |n: u64, what: &str| if n == 0 { String::new() } else { format!(" · {what} {n}") };
    let read = format!(
        "source {} · invalid {}{} · new {} · changed {} · unchanged {} · gone {}",
        c.source,
        c.invalid,
        some(c.suppressed, "suppressed"),
        c.new,
        c.changed,
        c.unchanged,
        c.gone
    );
    let sent = format!(
        "→ sent {}{} · rejected {} · failed {}",
        c.sent,
        some(c.deleted, "deleted"),
        c.rejected,
        c.failed
    );
    (read, sent)
}

/// Prints a run's counts after `indent`, on one line when it fits in [`TEXT_COLUMNS`], else
/// with what came of the sending on a line of its own.
pub(super) fn print_counts(indent: &str, c: &state::RunCounts) {
    let (read, sent) = counts_parts(c);
    let line = format!("{indent}{read} {sent}");
    if line.chars().count() <= TEXT_COLUMNS {
        println!("{line}");
    } else {
        println!("{indent}{read}");
        println!("{indent}{sent}");
    }
}

/// The widest line the text output prints.
pub(crate) const TEXT_COLUMNS: usize = 100;

/// `text` on as many lines as it takes to keep within [`TEXT_COLUMNS`], each after `indent`.
pub(super) fn print_wrapped(indent: &str, text: &str) {
    // Continuation lines hang two columns further in, so each item's start stands out; a word
    // longer than a line (a path, a URL) stays whole: cut, it could not be copied.
    let hanging = format!("{indent}  ");
    let options = textwrap::Options::new(TEXT_COLUMNS)
        .initial_indent(indent)
        .subsequent_indent(&hanging)
        .break_words(false);
    for line in textwrap::wrap(text, options) {
        println!("{line}");
    }
}

/// Prints the error and its hint; the exit code of a command that could not start.
pub(super) fn failure(e: &Error) -> ExitCode {
    print_error(e);
    ExitCode::FAILURE
}

/// One pretty JSON document on stdout. A value that cannot be serialised is an error, never an
/// empty line that a script would read as "nothing".
pub(super) fn print_json(value: &impl serde::Serialize) -> Result<(), Error> {
    println!("{}", serde_json::to_string_pretty(value).map_err(Error::Json)?);
    Ok(())
}
