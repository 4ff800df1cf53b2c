//! What the exporter tells the app's logger when export fails (WARN records, target
//! `plain_connect::export`, never exported): text from a response is made safe to log, and an
//! outage is told in a few lines, not one per batch.
//!
//! A failure is told once when it starts, with the reason and (while nothing has ever got through,
//! or when the credentials are refused) what to check; then at most one line per interval with
//! what was dropped since the last line, per signal and reason; then once when export works
//! again. Items the app threads dropped because the export queue was full are told the same way.
//! The counters stay exact; only the words are rate-limited.

use super::pipeline::PipelineConfig;
use super::transport::Endpoint;
use super::Signal;
use crate::core::counters::Counters;
use crate::settings::Token;
use std::fmt::Write;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Characters of server-supplied text kept in a log line.
const EXCERPT_CHARS: usize = 160;
/// Distinct (signal, reason) entries one line lists; the rest are summed as "other".
const MAX_TALLY_ENTRIES: usize = 8;
/// Secrets shorter than this are only redacted where they stand as a whole word, so that a header
/// value like `1` does not turn `HTTP 401` into `HTTP 40***`.
const SUBSTRING_REDACTION_CHARS: usize = 4;

/// Makes text from a response (status message, body, error) safe for a log line: control
/// characters and terminal escape sequences stripped, every configured secret replaced by `***`,
/// and the result cut to a short excerpt.
#[derive(Clone, Debug, Default)]
pub(crate) struct Redactor {
    /// Longest first, so a header value is redacted before a shorter secret inside it.
    secrets: Vec<Token>,
}

impl Redactor {
    /// Every header value the endpoint sends (the `Authorization` value included), and the
    /// credentials after an auth scheme (`Bearer <token>` → `<token>`), which a server may echo
    /// alone.
    pub(crate) fn new(endpoint: &Endpoint) -> Self {
        let mut secrets: Vec<Token> = Vec::new();
        let values = endpoint
            .headers
            .iter()
            .chain(endpoint.signal_headers.iter().flatten())
            .map(|(_, value)| value.expose_secret().trim());
        for value in values {
            let credentials = value.split_once(' ').map(|(_, rest)| rest.trim());
            for secret in std::iter::once(value).chain(credentials) {
                if !secret.is_empty() && !secrets.iter().any(|s| s.expose_secret() == secret) {
                    secrets.push(Token::new(secret));
                }
            }
        }
        secrets.sort_by_key(|s| std::cmp::Reverse(s.expose_secret().len()));
        Redactor { secrets }
    }

    /// Stripped first (so a secret split by an escape sequence is whole again), redacted next,
    /// cut last (so a cut never leaves part of a secret behind).
    pub(crate) fn excerpt(&self, text: &str) -> String {
        let mut clean = strip_controls(text);
        for secret in &self.secrets {
            clean = redact(&clean, secret.expose_secret());
        }
        let clean = clean.trim();
        match clean.char_indices().nth(EXCERPT_CHARS) {
            Some((cut, _)) => format!("{}…", &clean[..cut]),
            None => clean.to_owned(),
        }
    }
}

/// Drops terminal escape sequences (`ESC [ … final`, `ESC ] … BEL`), turns every other control
/// character (C0, C1, DEL) into a space, and drops the invisible formatting characters that can
/// reorder or hide text (bidi overrides, zero-width characters). Runs of whitespace collapse.
fn strip_controls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            match chars.peek() {
                Some('[') => {
                    chars.next();
                    // Parameters and intermediates, up to the final byte (@ to ~).
                    for c in chars.by_ref() {
                        if ('@'..='~').contains(&c) {
                            break;
                        }
                    }
                }
                Some(']') => {
                    for c in chars.by_ref() {
                        if c == '\u{7}' || c == '\u{1b}' {
                            break;
                        }
                    }
                }
                _ => {
                    chars.next();
                }
            }
            continue;
        }
        let invisible = matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}');
        if invisible {
            continue;
        }
        let c = if c.is_control() { ' ' } else { c };
        if c == ' ' && (out.is_empty() || out.ends_with(' ')) {
            continue;
        }
        out.push(c);
    }
    out
}

fn redact(text: &str, secret: &str) -> String {
    if secret.chars().count() >= SUBSTRING_REDACTION_CHARS {
        return text.replace(secret, "***");
    }
    let is_word = |c: char| c.is_alphanumeric() || c == '_' || c == '-';
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(secret) {
        let (before, after) = (&rest[..at], &rest[at + secret.len()..]);
        let bounded = !before.chars().next_back().is_some_and(is_word)
            && !after.chars().next().is_some_and(is_word);
        out.push_str(before);
        out.push_str(if bounded { "***" } else { secret });
        rest = after;
    }
    out.push_str(rest);
    out
}

/// Why an attempt failed, in kinds that decide what the user should check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Cause {
    /// The host name does not resolve.
    HostNotFound,
    /// Nothing accepts connections there.
    Connect,
    Timeout,
    /// Certificate or handshake failure.
    Tls,
    /// An https:// URL in a build without the `tls` feature.
    TlsUnavailable,
    /// Reset, protocol error, stalled body.
    Network,
    /// A status the endpoint answered with.
    Status(u16),
    /// Could not be sent or read at all (over a size cap, gzip failed).
    Local,
}

/// An attempt's failure: its kind, and text already safe to log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Reason {
    pub(crate) cause: Cause,
    text: String,
}

impl Reason {
    /// `text` must already be safe to log (our own words, or a [`Redactor::excerpt`]).
    pub(crate) fn new(cause: Cause, text: impl Into<String>) -> Self {
        Reason {
            cause,
            text: text.into(),
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

const URL_VARIABLES: &str = "export_url, PLAIN_CONNECT_EXPORT_URL or OTEL_EXPORTER_OTLP_ENDPOINT";

/// What to check, in the words of someone who just set the variables.
fn hint(cause: Cause, url: &str) -> Option<String> {
    Some(match cause {
        Cause::HostNotFound => format!(
            "the host name in {url} does not resolve: check the URL ({URL_VARIABLES}) and DNS"
        ),
        Cause::Connect => format!(
            "nothing accepts connections at {url}: check the URL and port ({URL_VARIABLES}) and \
             that the collector is running"
        ),
        Cause::Timeout => format!(
            "{url} did not answer in time: check the URL ({URL_VARIABLES}) and any firewall or \
             proxy on the way"
        ),
        Cause::Tls => format!(
            "no trusted TLS connection to {url}: check the server's certificate (its name, expiry, \
             and issuer: a private CA needs the `platform-roots` feature and the CA in the system \
             store) and the URL's scheme (https:// to a plain-http port fails like this)"
        ),
        Cause::TlsUnavailable => format!(
            "{url} is https://, which needs plain-connect's `tls` feature (on by default) that \
             this build lacks: enable it, or use http:// for a collector on this machine"
        ),
        Cause::Network if url.starts_with("https://") => format!(
            "the connection to {url} broke off: check the URL's scheme and port (https:// to a \
             port that speaks plain http ends like this), the server's certificate, and any proxy \
             on the way"
        ),
        Cause::Network => format!(
            "the connection to {url} broke off: check the URL and port ({URL_VARIABLES}): does an \
             OTLP/HTTP collector listen there?"
        ),
        Cause::Status(401 | 403) => "the endpoint refused the credentials: check the token \
             (PLAIN_CONNECT_EXPORT_TOKEN) or the auth headers (OTEL_EXPORTER_OTLP_HEADERS)"
            .to_owned(),
        Cause::Status(404 | 405) => format!(
            "nothing takes OTLP at {url}: check the URL's path (signals go to <export URL>/v1/traces, \
             /v1/metrics, /v1/logs; an OTEL_EXPORTER_OTLP_<SIGNAL>_ENDPOINT is used as given)"
        ),
        Cause::Status(300..=399) => format!(
            "{url} redirects, and the exporter never follows a redirect (the token must not \
             travel): check the URL (https:// instead of http://? a missing path?)"
        ),
        Cause::Status(413) => {
            "the endpoint refuses requests this large: lower max_export_batch_size".to_owned()
        }
        _ => return None,
    })
}

fn signal_index(signal: Signal) -> usize {
    match signal {
        Signal::Traces => 0,
        Signal::Metrics => 1,
        Signal::Logs => 2,
    }
}

/// `spans`, `metric points`, `log records`.
fn plural(signal: Signal) -> &'static str {
    match signal {
        Signal::Traces => "spans",
        Signal::Metrics => "metric points",
        Signal::Logs => "log records",
    }
}

/// `1 span`, `120 spans`, `3 metric points`.
fn items(signal: Signal, n: u64) -> String {
    let name = plural(signal);
    match n {
        1 => format!("1 {}", name.trim_end_matches('s')),
        _ => format!("{n} {name}"),
    }
}

/// Items of one signal dropped for one reason since the last line.
struct Tally {
    signal: Signal,
    reason: String,
    items: u64,
}

/// The exporter's voice: what it has said, and what it has yet to say.
pub(crate) struct Reporter {
    urls: [String; 3],
    interval: Duration,
    /// Since when each signal (traces, metrics, logs) has been failing.
    failing: [Option<Instant>; 3],
    /// The first failure of the current outage.
    outage_since: Option<Instant>,
    /// Whether the last line said export was failing.
    told_failing: bool,
    last_line: Option<Instant>,
    untold: Vec<Tally>,
    /// Queue-full drops (spans, logs) are counted on the app threads; what of them was told.
    counters: Arc<Counters>,
    queue_full_told: [u64; 2],
    /// Whether a batch was dropped since the last line (else the tally holds only rejections).
    failed_since_last_line: bool,
    ever_delivered: bool,
}

impl Reporter {
    pub(crate) fn new(config: &PipelineConfig, counters: Arc<Counters>) -> Self {
        let endpoint = &config.endpoint;
        Reporter {
            interval: config.report_interval,
            counters,
            queue_full_told: [0; 2],
            urls: [
                endpoint.traces_url.clone(),
                endpoint.metrics_url.clone(),
                endpoint.logs_url.clone(),
            ],
            failing: [None; 3],
            outage_since: None,
            told_failing: false,
            last_line: None,
            untold: Vec::new(),
            failed_since_last_line: false,
            ever_delivered: false,
        }
    }

    /// The endpoint took the batch; `rejected` of its items were refused (`partial_success`),
    /// with the endpoint's message, already safe to log.
    pub(crate) fn accepted(&mut self, signal: Signal, rejected: usize, message: Option<&str>) {
        self.ever_delivered = true;
        self.failing[signal_index(signal)] = None;
        if rejected > 0 || message.is_some() {
            let reason = match message {
                Some(message) if rejected > 0 => format!("refused by the endpoint: {message}"),
                Some(message) => format!("the endpoint warned: {message}"),
                None => "refused by the endpoint".to_owned(),
            };
            self.count(signal, reason, rejected);
        }
        self.speak_if_due(Instant::now());
    }

    /// A batch was dropped after `attempts` attempts.
    pub(crate) fn dropped(
        &mut self,
        signal: Signal,
        items_dropped: usize,
        attempts: u32,
        reason: &Reason,
    ) {
        let now = Instant::now();
        self.failed_since_last_line = true;
        self.failing[signal_index(signal)].get_or_insert(now);
        self.outage_since.get_or_insert(now);
        if self.told_failing || !self.quiet_since_last_line(now) {
            self.count(signal, reason.to_string(), items_dropped);
            self.speak_if_due(now);
            return;
        }
        let reason_text = if attempts > 1 {
            format!("{reason}, after {attempts} attempts")
        } else {
            reason.to_string()
        };
        let url = &self.urls[signal_index(signal)];
        let mut line = format!(
            "export to {url} is failing: {} dropped: {reason_text}",
            items(signal, items_dropped as u64)
        );
        let tell_what_to_check =
            !self.ever_delivered || matches!(reason.cause, Cause::Status(401 | 403));
        if let Some(hint) = hint(reason.cause, url).filter(|_| tell_what_to_check) {
            let prefix = if self.ever_delivered {
                ""
            } else {
                "nothing has got through yet; "
            };
            let _ = write!(line, " — {prefix}{hint}");
        }
        if !self.untold.is_empty() || self.queue_overflowed() {
            let _ = write!(line, " — dropped before: {}", self.take_tally());
        }
        let _ = write!(
            line,
            " — further failures are summed up at most every {}",
            human(self.interval)
        );
        self.say(now, true, &line);
    }

    fn count(&mut self, signal: Signal, reason: String, items: usize) {
        let items = items as u64;
        if let Some(t) = self
            .untold
            .iter_mut()
            .find(|t| t.signal == signal && t.reason == reason)
        {
            t.items += items;
        } else {
            self.untold.push(Tally {
                signal,
                reason,
                items,
            });
        }
    }

    fn quiet_since_last_line(&self, now: Instant) -> bool {
        self.last_line
            .is_none_or(|at| now.duration_since(at) >= self.interval)
    }

    /// Spans and log records dropped on a full queue since the last line.
    fn queue_full_untold(&self) -> [(Signal, u64); 2] {
        let now = [
            self.counters.spans.dropped_queue_full.load(Relaxed),
            self.counters.logs.dropped_queue_full.load(Relaxed),
        ];
        [
            (Signal::Traces, now[0] - self.queue_full_told[0]),
            (Signal::Logs, now[1] - self.queue_full_told[1]),
        ]
    }

    fn queue_overflowed(&self) -> bool {
        self.queue_full_untold().iter().any(|(_, n)| *n > 0)
    }

    /// A summary, or the recovery, once the interval since the last line has passed.
    fn speak_if_due(&mut self, now: Instant) {
        let healthy = self.failing.iter().all(Option::is_none);
        let recovered = healthy && (self.told_failing || self.failed_since_last_line);
        let overflowed = self.queue_overflowed();
        if (self.untold.is_empty() && !overflowed && !recovered) || !self.quiet_since_last_line(now)
        {
            return;
        }
        let since = self.outage_since.map(|t| human(now.duration_since(t)));
        let mut line = if !healthy {
            format!(
                "export is still failing (for {})",
                since.unwrap_or_default()
            )
        } else if recovered {
            format!(
                "export works again, after {} of failures",
                since.unwrap_or_default()
            )
        } else if overflowed || self.untold.iter().any(|t| t.items > 0) {
            "export works, but not everything got through".to_owned()
        } else {
            "export works".to_owned()
        };
        if !self.untold.is_empty() || overflowed {
            let _ = write!(line, "; since the last report: {}", self.take_tally());
        }
        if healthy && overflowed {
            line.push_str(
                " — the app records faster than export sends: raise max_queue_size, sample fewer \
                 traces, or log less",
            );
        }
        if healthy {
            self.outage_since = None;
        }
        self.say(now, !healthy, &line);
    }

    fn say(&mut self, now: Instant, failing: bool, line: &str) {
        log::warn!(target: "plain_connect::export", "{line}");
        self.told_failing = failing;
        self.failed_since_last_line = false;
        self.last_line = Some(now);
    }

    /// `120 spans (HTTP 503 …), 4 log records (connection refused)`, and empties the tally.
    fn take_tally(&mut self) -> String {
        for (i, (signal, n)) in self.queue_full_untold().into_iter().enumerate() {
            if n > 0 {
                self.queue_full_told[i] += n;
                self.count(signal, "export queue full".to_owned(), n as usize);
            }
        }
        let mut parts: Vec<String> = Vec::new();
        let mut other = 0;
        for (n, t) in self.untold.drain(..).enumerate() {
            if n < MAX_TALLY_ENTRIES {
                let what = match t.items {
                    0 => plural(t.signal).to_owned(),
                    n => items(t.signal, n),
                };
                parts.push(format!("{what} ({})", t.reason));
            } else {
                other += t.items;
            }
        }
        if other > 0 {
            parts.push(format!("{other} items for other reasons"));
        }
        parts.join(", ")
    }
}

impl Drop for Reporter {
    /// What was dropped after the last line is told when the exporter stops, not lost.
    fn drop(&mut self) {
        if !self.untold.is_empty() || self.queue_overflowed() {
            let line = format!(
                "export stopped; since the last report: {}",
                self.take_tally()
            );
            log::warn!(target: "plain_connect::export", "{line}");
        }
    }
}

/// `45s`, `2m 5s`, `1h 3m`: for people.
fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0 => format!("{}ms", d.as_millis()),
        1..=59 => format!("{s}s"),
        60..=3599 => format!("{}m {}s", s / 60, s % 60),
        _ => format!("{}h {}m", s / 3600, s % 3600 / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redactor(secrets: &[&str]) -> Redactor {
        let mut r = Redactor {
            secrets: secrets.iter().map(|s| Token::new(*s)).collect(),
        };
        r.secrets
            .sort_by_key(|s| std::cmp::Reverse(s.expose_secret().len()));
        r
    }

    #[test]
    fn excerpts_are_stripped_redacted_and_short() {
        let r = redactor(&["Bearer s3cr3t-token", "s3cr3t-token", "1"]);
        assert_eq!(
            r.excerpt("you sent Bearer s3cr3t-token \u{1b}[31mred\u{1b}[0m\r\n\tHTTP 401, key 1."),
            "you sent *** red HTTP 401, key ***."
        );
        // An escape sequence splitting the secret does not hide it from redaction.
        assert_eq!(r.excerpt("s3cr3t\u{1b}[0m-token"), "***");
        assert_eq!(
            r.excerpt("\u{1b}]0;title\u{7}a\u{202e}b\u{200b}c\u{0}\u{7f}\u{85}d"),
            "abc d"
        );
        let long = format!("{}s3cr3t-token", "x".repeat(EXCERPT_CHARS - 3));
        let cut = r.excerpt(&long);
        assert!(!cut.contains("s3cr"), "{cut}");
        assert!(cut.chars().count() <= EXCERPT_CHARS + 1);
    }

    #[test]
    fn durations_read_as_people_say_them() {
        assert_eq!(human(Duration::from_millis(250)), "250ms");
        assert_eq!(human(Duration::from_secs(45)), "45s");
        assert_eq!(human(Duration::from_secs(125)), "2m 5s");
        assert_eq!(human(Duration::from_secs(3780)), "1h 3m");
    }
}
