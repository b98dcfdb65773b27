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

/// The width result tables fit, decided once at start-up by [`init_terminal`]; unset or `None`
/// means as wide as their content.
static RESULT_WIDTH: OnceLock<Option<u16>> = OnceLock::new();

/// Decides, once, whether stderr may carry escape sequences (`--color always` yes, `--color
/// never` no, `auto` only on a terminal and when `NO_COLOR` is not set), and the width result
/// tables fit: `columns` (`COLUMNS`) when set, else the width of the terminal stdout is, else
/// none (a pipe or a file gets rows unwrapped).
pub fn init_terminal(choice: ColorChoice, no_color: bool, columns: Option<u16>) {
    let escapes = match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => !no_color && io::stderr().is_terminal(),
    };
    let _ = ESCAPES_ON_STDERR.set(escapes);
    let width =
        columns.or_else(|| terminal_size::terminal_size_of(io::stdout()).map(|(width, _)| width.0));
    let _ = RESULT_WIDTH.set(width);
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
/// On a terminal (or with `COLUMNS` set) the table fits its width, long cells wrapping inside
/// their column; piped or redirected, rows are never wrapped.
pub fn table<const N: usize>(
    header: [&str; N],
    rows: impl IntoIterator<Item = [String; N]>,
) -> String {
    table_within(result_width(), header, rows)
}

fn result_width() -> Option<u16> {
    RESULT_WIDTH.get().copied().flatten()
}

/// [`table`] at a given width (`None`: as wide as the content).
fn table_within<const N: usize>(
    width: Option<u16>,
    header: [&str; N],
    rows: impl IntoIterator<Item = [String; N]>,
) -> String {
    let mut table = comfy_table::Table::new();
    table
        .load_style(comfy_table::presets::NOTHING)
        .set_header(header)
        .add_rows(
            rows.into_iter()
                .map(|row| row.map(|cell| terminal_safe(&cell))),
        );
    if let Some(width) = width {
        table
            .set_content_arrangement(comfy_table::ContentArrangement::Dynamic)
            .set_width(width);
    }
    // Two spaces between columns, none at the edges.
    for column in table.column_iter_mut() {
        column.set_padding((0, 2));
    }
    let mut text = table.trim_fmt();
    text.push('\n');
    text
}

/// Writes text to stdout, treating a closed pipe (`| head`) as success.
pub fn write_stdout(text: &str) -> io::Result<()> {
    match stdout().write_all(text.as_bytes()) {
        Err(err) if err.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

/// A command's result as a JSON document for scripts (`--json`): a documented, versioned shape,
/// one schema per document in `docs/schema/{SCHEMA}.schema.json` (tests validate real output
/// against it).
pub trait JsonDocument: serde::Serialize {
    /// The schema's file name without `.schema.json`.
    const SCHEMA: &'static str;
    /// Raised when a field is removed or changes meaning; adding a field keeps it.
    const VERSION: u32;
}

/// Writes a result document to stdout as pretty JSON with its `schema_version` first.
pub fn write_json<D: JsonDocument>(document: &D) -> io::Result<()> {
    #[derive(serde::Serialize)]
    struct Versioned<'a, D> {
        schema_version: u32,
        #[serde(flatten)]
        document: &'a D,
    }
    let mut text = serde_json::to_string_pretty(&Versioned {
        schema_version: D::VERSION,
        document,
    })
    .map_err(io::Error::other)?;
    text.push('\n');
    write_stdout(&text)
}

/// Writes a command's result: as its JSON document with `--json`, else as the text `render`
/// makes of it.
pub fn write_result<D: JsonDocument>(
    json: bool,
    document: &D,
    render: impl FnOnce(&D) -> String,
) -> io::Result<()> {
    if json {
        write_json(document)
    } else {
        write_stdout(&render(document))
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

    fn sample_rows() -> Vec<[String; 3]> {
        vec![
            [
                "invitation.redirect_url".to_owned(),
                "https://myapplications.microsoft.com/?tenantid=0b1c2d3e-4f5a-6b7c-8d9e-0f1a2b3c4d5e"
                    .to_owned(),
                "default".to_owned(),
            ],
            ["a".to_owned(), "b".to_owned(), "c".to_owned()],
        ]
    }

    #[test]
    fn without_a_width_columns_are_aligned_two_spaces_apart_and_rows_never_wrap() {
        let text = table_within(None, ["KEY", "VALUE", "FROM"], sample_rows());
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(
            lines[0].starts_with("KEY                      VALUE "),
            "{text}"
        );
        assert!(
            lines[1].starts_with("invitation.redirect_url  https://"),
            "{text}"
        );
        assert!(lines[1].ends_with("4d5e  default"), "{text}");
        assert_eq!(lines[2].find('b'), lines[1].find("https"), "{text}");
        assert!(
            lines.iter().all(|l| l == &l.trim_end()),
            "no trailing spaces"
        );
    }

    #[test]
    fn at_a_width_long_cells_wrap_inside_their_column_and_every_line_fits() {
        let text = table_within(Some(60), ["KEY", "VALUE", "FROM"], sample_rows());
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines.len() > 3, "the long value wraps: {text}");
        assert!(lines.iter().all(|l| l.chars().count() <= 60), "{text}");
        let value_at = lines[0].find("VALUE").unwrap();
        // The wrapped row's continuation lines hold only the value, in its column.
        let row_end = lines.iter().position(|l| l.starts_with('a')).unwrap();
        for line in &lines[2..row_end] {
            assert_eq!(line.len() - line.trim_start().len(), value_at, "{text}");
        }
        let value: String = lines[1..row_end]
            .iter()
            .map(|l| l[value_at..].split("  ").next().unwrap().trim())
            .collect();
        assert!(value.contains("tenantid=0b1c2d3e"), "nothing lost: {text}");
        assert!(lines[1].trim_end().ends_with("default"), "{text}");
    }
}
