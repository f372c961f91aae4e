//! Output: data to stdout, everything else to stderr; progress bars only on a terminal and never
//! with `-q` or `--json`; no colour when `NO_COLOR` is set or stderr is not a terminal.

// The one module that prints (clippy.toml's lints forbid it elsewhere), so that every line obeys
// `-q`, `--json`, the progress bars and the redaction of secrets.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

use composer_planner::{Phase, Reporter};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::cli::GlobalArgs;

/// `println!` that treats a closed stdout (`compose inspect | head`) as the end of output rather
/// than a panic.
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// The version of every `--json` document's shape (docs/architecture.md, "JSON output").
pub const JSON_SCHEMA_VERSION: u64 = 1;

/// Prints a `--json` document on stdout: an object, with its `schema_version`.
pub fn json_out<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    let document = crate::documents::Versioned { schema_version: JSON_SCHEMA_VERSION, body: value };
    out!("{}", serde_json::to_string_pretty(&document)?);
    Ok(())
}

pub struct Printer {
    pub quiet: bool,
    pub verbose: bool,
    pub json: bool,
    mode: crate::cli::ProgressMode,
    color: bool,
    progress: bool,
    multi: MultiProgress,
    bars: Mutex<HashMap<&'static str, ProgressBar>>,
}

/// What the store says while it waits for its lock: a line on stderr, as warnings go.
pub fn waiting(message: &str) {
    eprintln!("{message}");
}

/// A problem `compose store verify` found: one line on stderr, the report's data on its own.
pub fn problem(path: &std::path::Path, problem: &str) {
    eprintln!("{}: {problem}", path.display());
}

impl Printer {
    pub fn new(args: &GlobalArgs) -> Printer {
        let terminal = std::io::stderr().is_terminal();
        let progress = terminal && !args.quiet && !args.json && args.progress == crate::cli::ProgressMode::Auto;
        let multi = MultiProgress::with_draw_target(if progress {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        });
        Printer {
            quiet: args.quiet,
            verbose: args.verbose,
            json: args.json,
            mode: args.progress,
            color: terminal && !crate::settings::no_color() && args.progress != crate::cli::ProgressMode::Json,
            progress,
            multi,
            bars: Mutex::new(HashMap::new()),
        }
    }

    fn paint(&self, code: &str, text: &str) -> String {
        if self.color { format!("\x1b[{code}m{text}\x1b[0m") } else { text.to_string() }
    }

    /// One JSON object per line on stderr, for `--progress json`.
    fn event(&self, event: serde_json::Value) {
        eprintln!("{event}");
    }

    /// A status line on stderr (hidden with -q).
    pub fn status(&self, label: &str, message: &str) {
        if self.mode == crate::cli::ProgressMode::Json {
            return self.event(serde_json::json!({"event": "status", "label": label, "message": message}));
        }
        if !self.quiet {
            self.line(format!("{} {message}", self.paint("1;32", &format!("{label:>10}"))));
        }
    }

    /// A warning on stderr (shown even with -q: something was not as it should be).
    pub fn warn(&self, message: &str) {
        let message = &*composer_client::redact(message);
        if self.mode == crate::cli::ProgressMode::Json {
            return self.event(serde_json::json!({"event": "warning", "message": message}));
        }
        self.line(format!("{} {message}", self.paint("1;33", "warning:")));
    }

    pub fn detail(&self, message: &str) {
        if self.verbose {
            let message = composer_client::redact(message);
            self.line(format!("{} {message}", self.paint("2", &format!("{:>10}", "note"))));
        }
    }

    /// A line on stderr that does not tear the progress bars.
    fn line(&self, text: String) {
        if self.progress {
            let _ = self.multi.println(text);
        } else {
            eprintln!("{text}");
        }
    }

    pub fn error(&self, error: &anyhow::Error) {
        let hint = crate::hints::hint(error);
        // Every line goes through the one redaction: a URL or reference that an error of any
        // crate (or a library's error under it) repeats shows no `USER:PASSWORD@`.
        // And the one escape: a name from a package, a wheel or a file name that holds a terminal
        // escape (a title change, a cleared screen) or a carriage return is shown, never obeyed.
        // Line breaks stay: errors lay out their snippets with them.
        let shown = |e: &dyn std::fmt::Display| terminal_safe(&composer_client::redact(&e.to_string()));
        let message = shown(error);
        // A cause whose text the error above it ends with is said once (composer_store::causes).
        let causes: Vec<String> = composer_store::causes(error.as_ref()).iter().map(|c| shown(c)).collect();
        // Under --json a failure is a document too, so that a tool reading stdout learns why.
        if self.json {
            let _ = json_out(&crate::documents::ErrorDocument {
                error: crate::documents::ErrorBody {
                    message: message.clone(),
                    causes: causes.clone(),
                    hint: hint.clone(),
                },
            });
        }
        eprintln!("{} {message}", self.paint("1;31", "error:"));
        for cause in &causes {
            eprintln!("  {} {cause}", self.paint("1", "caused by:"));
        }
        if let Some(hint) = hint {
            eprintln!("{} {}", self.paint("1;36", "hint:"), terminal_safe(&hint));
        }
    }

    fn style(phase: Phase) -> (&'static str, ProgressStyle) {
        let template = |t: &str| ProgressStyle::with_template(t).expect("valid template").progress_chars("=> ");
        match phase {
            Phase::Download => {
                ("download", template("{prefix:>10.bold} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}"))
            }
            Phase::Unpack => ("unpack", template("{prefix:>10.bold} [{bar:30}] {pos}/{len} packages")),
            Phase::Layers => ("layers", template("{prefix:>10.bold} [{bar:30}] {pos}/{len} layers")),
        }
    }
}

impl composer_planner::Notes for Printer {
    fn note(&self, message: &str) {
        self.detail(message);
    }
}

impl Reporter for Printer {
    fn start(&self, phase: Phase, total: u64) {
        if !self.progress || total == 0 {
            return;
        }
        let (name, style) = Self::style(phase);
        let bar = self.multi.add(ProgressBar::new(total).with_style(style).with_prefix(name));
        bar.enable_steady_tick(Duration::from_millis(120));
        self.bars.lock().expect("bars").insert(name, bar);
    }
    fn advance(&self, phase: Phase, n: u64) {
        if let Some(bar) = self.bars.lock().expect("bars").get(Self::style(phase).0) {
            bar.inc(n);
        }
    }
    fn finish(&self, phase: Phase) {
        if let Some(bar) = self.bars.lock().expect("bars").remove(Self::style(phase).0) {
            bar.finish_and_clear();
        }
    }
    fn warn(&self, message: &str) {
        Printer::warn(self, message);
    }
    fn status(&self, label: &str, message: &str) {
        Printer::status(self, label, message);
    }
    fn step(&self, report: &composer_planner::StepReport, seconds: f64) {
        match self.mode {
            crate::cli::ProgressMode::Json => {
                let mut event = serde_json::to_value(report).unwrap_or_default();
                if let Some(object) = event.as_object_mut() {
                    object.insert("event".into(), "step".into());
                    object.insert("seconds".into(), ((seconds * 1000.0).round() / 1000.0).into());
                }
                self.event(event);
            }
            crate::cli::ProgressMode::Plain if !self.quiet => {
                let platform = match (&report.platform, &report.cross) {
                    (Some(p), Some(on)) => format!(" [{p}, cross-compiled on {on}]"),
                    (Some(p), None) => format!(" [{p}]"),
                    (None, _) => String::new(),
                };
                let how = match (&report.substituted, report.cached) {
                    (Some(cache), _) => format!("from {cache}"),
                    (None, true) => "cached".into(),
                    (None, false) => format!("ran in {seconds:.2}s"),
                };
                eprintln!("{:>10} {} {}{platform}: {how}", "step", report.step, report.name);
            }
            _ => {}
        }
    }
}

/// `text` with every control character but the line break escaped (`\u{1b}`).
fn terminal_safe(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\n' => "\n".to_string(),
            c if c.is_control() => c.escape_debug().to_string(),
            c => c.to_string(),
        })
        .collect()
}
