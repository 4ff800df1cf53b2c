//! Secret header values written into a request after the HTTP client has logged it.
//!
//! ureq-proto dumps every request head it writes at TRACE (`ureq_proto::util`, hex and text),
//! so an app whose logger takes everything at TRACE — a plain `env_logger::init()` with
//! `RUST_LOG=trace`, not wrapped by our bridge — would print the export token. No logging
//! setting of ours can reach that logger, so the client never sees the secrets: each secret
//! header is given to it with a stand-in value of the same length, and the transport puts the
//! real value in place of the stand-in just before the bytes leave, below the client's logging.
//!
//! A stand-in is only replaced inside its own header line at the start of a request, so body
//! bytes are never touched. Should a head ever be split over two writes, the stand-in goes out
//! as it is: the endpoint refuses the request (401), which is counted; the secret still never
//! shows.

use crate::settings::Token;
use rand::{Rng, SeedableRng};
use std::fmt;
use std::sync::Arc;
use ureq::unversioned::transport::{Buffers, ConnectionDetails, Connector, NextTimeout, Transport};

/// The secret header values of one endpoint and their stand-ins.
#[derive(Default)]
pub(crate) struct LateHeaders {
    /// `(header line as written with the stand-in, offset of the value in it, real value)`.
    lines: Vec<(Vec<u8>, usize, Token)>,
}

impl fmt::Debug for LateHeaders {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LateHeaders({} secret values)", self.lines.len())
    }
}

impl LateHeaders {
    /// The stand-in to give the HTTP client for header `name` whose value is `secret`.
    pub(crate) fn stand_in(&mut self, name: &str, secret: &Token) -> String {
        if let Some((line, at, _)) = self.lines.iter().find(|(line, at, value)| {
            value.expose_secret() == secret.expose_secret()
                && line[..at - 2].eq_ignore_ascii_case(name.as_bytes())
        }) {
            return String::from_utf8_lossy(&line[*at..line.len() - 2]).into_owned();
        }
        // Not a secret itself, only unlikely to occur by chance: any seed will do.
        let rng = rand::rngs::SmallRng::try_from_os_rng().unwrap_or_else(|_| {
            rand::rngs::SmallRng::seed_from_u64(u64::from(std::process::id()) ^ line_seed(name))
        });
        let stand_in: String = rng
            .sample_iter(rand::distr::Alphanumeric)
            .take(secret.expose_secret().len())
            .map(char::from)
            .collect();
        // As ureq-proto writes a header: its name as `http` keeps it (lowercase), `: `, value.
        let mut line = name.to_ascii_lowercase().into_bytes();
        line.extend_from_slice(b": ");
        let at = line.len();
        line.extend_from_slice(stand_in.as_bytes());
        line.extend_from_slice(b"\r\n");
        self.lines.push((line, at, secret.clone()));
        stand_in
    }

    /// Puts the real values in place of the stand-ins in `output`, if it starts a request.
    fn fill(&self, output: &mut [u8]) {
        if self.lines.is_empty() || !output.starts_with(b"POST ") {
            return;
        }
        let head_end = find(output, b"\r\n\r\n").map_or(output.len(), |at| at + 2);
        let head = &mut output[..head_end];
        for (line, at, secret) in &self.lines {
            let mut from = 0;
            while let Some(found) = find(&head[from..], line) {
                let start = from + found;
                // Only a whole line: preceded by the previous line's end.
                if start >= 2 && &head[start - 2..start] == b"\r\n" {
                    let value = start + at;
                    head[value..value + secret.expose_secret().len()]
                        .copy_from_slice(secret.expose_secret().as_bytes());
                }
                from = start + line.len();
            }
        }
    }
}

fn line_seed(name: &str) -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    now ^ (name.len() as u64).rotate_left(32)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The last link of the connector chain: wraps whatever transport the default chain made
/// (TCP, or TLS over it) so secrets are filled in below the client's logging.
#[derive(Debug)]
pub(crate) struct FillingConnector(pub(crate) Arc<LateHeaders>);

impl<In: Transport> Connector<In> for FillingConnector {
    type Out = FillingTransport<In>;

    fn connect(
        &self,
        _details: &ConnectionDetails,
        chained: Option<In>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        Ok(chained.map(|inner| FillingTransport {
            inner,
            headers: Arc::clone(&self.0),
        }))
    }
}

#[derive(Debug)]
pub(crate) struct FillingTransport<T> {
    inner: T,
    headers: Arc<LateHeaders>,
}

impl<T: Transport> Transport for FillingTransport<T> {
    fn buffers(&mut self) -> &mut dyn Buffers {
        self.inner.buffers()
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        let output = self.inner.buffers().output();
        let amount_in_buffer = amount.min(output.len());
        self.headers.fill(&mut output[..amount_in_buffer]);
        self.inner.transmit_output(amount, timeout)
    }

    fn maybe_await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        self.inner.maybe_await_input(timeout)
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        self.inner.await_input(timeout)
    }

    fn is_open(&mut self) -> bool {
        self.inner.is_open()
    }

    fn is_tls(&self) -> bool {
        self.inner.is_tls()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_only_whole_header_lines_of_a_request_head() {
        let mut headers = LateHeaders::default();
        let token = Token::new("Bearer s3cr3t-token");
        let stand_in = headers.stand_in("Authorization", &token);
        assert_eq!(stand_in.len(), token.expose_secret().len());
        assert_ne!(stand_in, token.expose_secret());
        assert_eq!(
            headers.stand_in("authorization", &token),
            stand_in,
            "reused"
        );
        let short = headers.stand_in("x-key", &Token::new("k"));

        let head = format!(
            "POST /v1/traces HTTP/1.1\r\nauthorization: {stand_in}\r\nx-other: {stand_in}\r\n\
             x-key: {short}\r\n\r\nauthorization: {stand_in}\r\n"
        );
        let mut bytes = head.clone().into_bytes();
        headers.fill(&mut bytes);
        let filled = String::from_utf8(bytes).unwrap();
        assert_eq!(
            filled,
            format!(
                "POST /v1/traces HTTP/1.1\r\nauthorization: Bearer s3cr3t-token\r\n\
                 x-other: {stand_in}\r\nx-key: k\r\n\r\nauthorization: {stand_in}\r\n"
            ),
            "another header's value and the body after the head stay as they are"
        );

        let mut body = format!("authorization: {stand_in}\r\n").into_bytes();
        let before = body.clone();
        headers.fill(&mut body);
        assert_eq!(body, before, "not the start of a request");
    }
}
