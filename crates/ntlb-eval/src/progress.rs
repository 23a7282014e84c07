//! Progress that reads well in both places a sweep runs: a bar on a terminal, and in a batch
//! log (Slurm `.out`, CI, `> log`) a plain line every few seconds with items/s and ETA. Notes
//! (such as a skipped image) are printed in both; a hidden indicatif bar would swallow them.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

static LOG_EVERY_MS: AtomicU64 = AtomicU64::new(30_000);

/// Seconds between plain progress lines when stderr is not a terminal (`--log-every`).
pub fn set_log_every(seconds: f64) {
    LOG_EVERY_MS.store((seconds.max(0.0) * 1000.0) as u64, Ordering::Relaxed);
}

fn log_every() -> Duration {
    Duration::from_millis(LOG_EVERY_MS.load(Ordering::Relaxed))
}

enum Mode {
    Quiet,
    Bar(ProgressBar),
    Lines { last: Instant },
}

pub struct Progress {
    label: String,
    total: u64,
    pos: u64,
    start: Instant,
    mode: Mode,
}

/// `1h02m`, `3m04s`, `12s`.
pub fn human_duration(s: f64) -> String {
    let s = s.max(0.0).round() as u64;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
    }
}

impl Progress {
    /// `enabled = false` prints nothing at all (tests, library use).
    pub fn new(label: &str, total: u64, enabled: bool) -> Progress {
        Progress::with_terminal(label, total, enabled, std::io::stderr().is_terminal())
    }

    pub fn with_terminal(label: &str, total: u64, enabled: bool, terminal: bool) -> Progress {
        let mode = match (enabled, terminal) {
            (false, _) => Mode::Quiet,
            (true, true) => {
                let bar = ProgressBar::new(total);
                bar.set_style(
                    ProgressStyle::with_template(&format!("{label:<16} {{bar:30}} {{pos}}/{{len}} {{per_sec}} {{eta}} {{msg}}"))
                        .expect("template"),
                );
                Mode::Bar(bar)
            }
            (true, false) => Mode::Lines { last: Instant::now() },
        };
        Progress {
            label: label.into(),
            total,
            pos: 0,
            start: Instant::now(),
            mode,
        }
    }

    /// The plain status line (also what a batch log shows).
    pub fn line(&self, note: &str) -> String {
        let secs = self.start.elapsed().as_secs_f64();
        let rate = self.pos as f64 / secs.max(1e-9);
        let eta = if rate > 0.0 {
            human_duration(self.total.saturating_sub(self.pos) as f64 / rate)
        } else {
            "?".into()
        };
        let pct = 100.0 * self.pos as f64 / self.total.max(1) as f64;
        let mut s = format!(
            "{} {}/{} ({pct:.0}%) {rate:.1} items/s, elapsed {}, ETA {eta}",
            self.label,
            self.pos,
            self.total,
            human_duration(secs)
        );
        if !note.is_empty() {
            s += &format!(", {note}");
        }
        s
    }

    pub fn set(&mut self, pos: u64, note: &str) {
        self.pos = pos;
        match &mut self.mode {
            Mode::Quiet => {}
            Mode::Bar(b) => {
                b.set_position(pos);
                b.set_message(note.to_string());
            }
            Mode::Lines { last } => {
                if last.elapsed() >= log_every() {
                    *last = Instant::now();
                    eprintln!("{}", self.line(note));
                }
            }
        }
    }

    /// A note that must reach the log (an unreadable image, a wait on another task).
    pub fn note(&self, msg: &str) {
        match &self.mode {
            Mode::Quiet => {}
            Mode::Bar(b) => b.println(msg),
            Mode::Lines { .. } => eprintln!("{msg}"),
        }
    }

    pub fn finish(self, note: &str) {
        match &self.mode {
            Mode::Quiet => {}
            Mode::Bar(b) => b.finish_and_clear(),
            Mode::Lines { .. } => eprintln!("{} done", self.line(note)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_lines_carry_rate_and_eta() {
        let mut p = Progress::with_terminal("imagenet", 1000, true, false);
        std::thread::sleep(Duration::from_millis(20));
        p.set(250, "3 unreadable");
        let l = p.line("3 unreadable");
        assert!(l.starts_with("imagenet 250/1000 (25%) "), "{l}");
        assert!(
            l.contains("items/s") && l.contains("ETA ") && !l.contains("ETA ?") && l.ends_with("3 unreadable"),
            "{l}"
        );
        assert_eq!(human_duration(3725.0), "1h02m");
        assert_eq!(human_duration(184.0), "3m04s");
    }
}
