//! What the tool shows the operator: results on stdout, the log and errors on stderr.
//!
//! The one place (with the report writer, later) allowed to print. Commands format their
//! results and hand them here; they never call `println!` themselves.

use std::io::{self, IsTerminal, Write};
use std::sync::OnceLock;

use tracing_subscriber::EnvFilter;

use crate::cli::ColorChoice;

/// Where command results go. Locked once per command so lines never interleave.
pub fn stdout() -> io::StdoutLock<'static> {
    io::stdout().lock()
}

/// Prints a fatal error with its whole cause chain, the way `main` reports failures.
#[allow(clippy::print_stderr)]
pub fn print_error(err: &anyhow::Error) {
    eprintln!("error: {err:#}");
}

/// Whether stderr may carry escape sequences (colour, the live progress line), decided once
/// at start-up by [`init_terminal`]; unset (tests, library use) means no.
static ESCAPES_ON_STDERR: OnceLock<bool> = OnceLock::new();

/// Decides, once, whether stderr may carry escape sequences: `--color always` yes, `--color
/// never` no, `auto` only on a terminal and when `NO_COLOR` is not set.
pub fn init_terminal(choice: ColorChoice, no_color: bool) {
    let escapes = match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => !no_color && io::stderr().is_terminal(),
    };
    let _ = ESCAPES_ON_STDERR.set(escapes);
}

fn escapes_on_stderr() -> bool {
    ESCAPES_ON_STDERR.get().copied().unwrap_or(false)
}

/// Whether a progress line is drawn at all (stderr is a terminal and may carry escape
/// sequences): work done only for it, such as counting what is to come, can be skipped.
pub fn progress_shown() -> bool {
    escapes_on_stderr() && io::stderr().is_terminal()
}

/// Starts logging to stderr. `verbosity`: -1 quiet, 0 default, 1.. per `-v`. A filter from
/// `B2BC_LOG` wins over the verbosity flags.
pub fn init_logging(verbosity: i8, json: bool, filter_override: Option<&str>) {
    let ours = match verbosity {
        i8::MIN..=-1 => "error",
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let default_filter = format!(
        "{},b2b_convert={ours}",
        if verbosity < 0 { "error" } else { "warn" }
    );
    let (filter, bad_override) = match filter_override.map(EnvFilter::try_new) {
        Some(Ok(filter)) => (filter, None),
        Some(Err(err)) => (EnvFilter::new(&default_filter), Some(err)),
        None => (EnvFilter::new(&default_filter), None),
    };
    let builder = tracing_subscriber::fmt()
        .with_writer(io::stderr)
        .with_env_filter(filter)
        .with_target(false);
    if json {
        builder.json().init();
    } else {
        builder.with_ansi(escapes_on_stderr()).init();
    }
    if let Some(err) = bad_override {
        tracing::warn!("ignoring B2BC_LOG, it is not a valid filter: {err}");
    }
}

/// Replaces control characters (escape sequences, carriage returns, new lines) by `�`, so a
/// display name from the directory cannot move the cursor, recolour or rewrite a terminal.
pub fn terminal_safe(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { '\u{fffd}' } else { c })
        .collect()
}

/// Renders rows as aligned plain-text columns under a header: easy to read and to grep. Every
/// cell goes through [`terminal_safe`]: cells hold names and error text from the directory.
pub fn table<const N: usize>(
    header: [&str; N],
    rows: impl IntoIterator<Item = [String; N]>,
) -> String {
    let rows: Vec<[String; N]> = rows
        .into_iter()
        .map(|row| row.map(|cell| terminal_safe(&cell)))
        .collect();
    let mut widths = header.map(|h| h.chars().count());
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut text = String::new();
    let mut push_line = |cells: [&str; N]| {
        let mut line = String::new();
        for (i, (cell, width)) in cells.iter().zip(widths).enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            line.push_str(cell);
            line.extend(std::iter::repeat_n(' ', width - cell.chars().count()));
        }
        text.push_str(line.trim_end());
        text.push('\n');
    };
    push_line(header);
    for row in &rows {
        push_line(row.each_ref().map(String::as_str));
    }
    text
}

/// Writes text to stdout, treating a closed pipe (`| head`) as success.
pub fn write_stdout(text: &str) -> io::Result<()> {
    match stdout().write_all(text.as_bytes()) {
        Err(err) if err.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

/// Shows the operator something they must act on now (for example the device-code sign-in),
/// on stderr so it never mixes with results.
#[allow(clippy::print_stderr)]
pub fn notice(text: &str) {
    eprintln!("{text}");
}

/// A live status line on stderr while a long command works; invisible when stderr is not a
/// terminal (logs and CI output stay clean) or escape sequences are off (`--color never`,
/// `NO_COLOR`): redrawing a line needs them.
#[derive(Debug)]
pub struct Progress {
    bar: indicatif::ProgressBar,
}

impl Progress {
    pub fn spinner(message: &str) -> Self {
        let bar = visible_if_allowed(indicatif::ProgressBar::new_spinner());
        bar.set_style(
            indicatif::ProgressStyle::with_template("{spinner} [{elapsed_precise}] {msg}")
                .expect("a constant template parses"),
        );
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        bar.set_message(message.to_owned());
        Self { bar }
    }

    /// A bar for `total` items with position, rate and ETA.
    pub fn bar(total: u64) -> Self {
        let bar = visible_if_allowed(indicatif::ProgressBar::new(total));
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "[{elapsed_precise}] {bar:30} {pos}/{len} {msg} (ETA {eta})",
            )
            .expect("a constant template parses"),
        );
        bar.enable_steady_tick(std::time::Duration::from_millis(250));
        Self { bar }
    }

    /// One more item done.
    pub fn inc(&self) {
        self.bar.inc(1);
    }

    /// `n` more items done.
    pub fn inc_by(&self, n: u64) {
        self.bar.inc(n);
    }

    pub fn set_message(&self, message: String) {
        self.bar.set_message(message);
    }

    /// Removes the status line.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

fn visible_if_allowed(bar: indicatif::ProgressBar) -> indicatif::ProgressBar {
    if !escapes_on_stderr() {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    bar
}

/// Items per second, for progress lines and summaries.
#[allow(clippy::cast_precision_loss)] // counts stay far below 2^52
pub fn rate(count: u64, elapsed: std::time::Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64().max(0.001)
}

/// Stdout without holding its lock, for a long-running command that prints now and then.
pub fn stdout_unbuffered() -> io::Stdout {
    io::stdout()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_cannot_reach_the_terminal() {
        assert_eq!(
            terminal_safe("a\u{1b}[31mb\r\nc\td"),
            "a\u{fffd}[31mb\u{fffd}\u{fffd}c\u{fffd}d"
        );
        assert_eq!(terminal_safe("Zoë Ünal"), "Zoë Ünal");
    }

    #[test]
    fn table_cells_cannot_reach_the_terminal_either() {
        let text = table(
            ["user", "why"],
            [[
                "a\u{1b}]0;owned\u{7}@x".to_owned(),
                "line\nbreak".to_owned(),
            ]],
        );
        assert!(
            !text.chars().any(|c| c.is_control() && c != '\n'),
            "{text:?}"
        );
        assert_eq!(text.lines().count(), 2, "one header, one row: {text:?}");
    }
}
