//! Splits `scheme://[userinfo@]host[:port][/path][?query][#fragment]` by hand: the crate needs
//! the parts, not a URL crate's validation and normalisation.

/// The parts of an absolute URL, borrowed from it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct UrlParts<'a> {
    /// As written (`http`, `https`...).
    pub scheme: &'a str,
    /// `user:password` before the `@`, when present.
    pub userinfo: Option<&'a str>,
    /// The host; an IPv6 address without its brackets.
    pub host: &'a str,
    /// The host and port exactly as written (brackets kept).
    pub host_port: &'a str,
    /// The port as written, when present.
    pub port: Option<&'a str>,
    /// Everything after the authority: path, query, fragment (possibly empty).
    pub rest: &'a str,
}

impl UrlParts<'_> {
    /// The port written in the URL, or the scheme's default (80, 443); `None` when the written
    /// port is not a number or the scheme has no default.
    pub fn port_or_default(&self) -> Option<u16> {
        match self.port {
            Some(port) => port.parse().ok(),
            None if self.scheme.eq_ignore_ascii_case("http") => Some(80),
            None if self.scheme.eq_ignore_ascii_case("https") => Some(443),
            None => None,
        }
    }
}

/// The parts of `url`, or `None` when it has no `scheme://` or no host.
pub(crate) fn split(url: &str) -> Option<UrlParts<'_>> {
    let (scheme, after_scheme) = url.split_once("://")?;
    if scheme.is_empty()
        || !scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    {
        return None;
    }
    let authority_end = after_scheme
        .find(['/', '?', '#'])
        .unwrap_or(after_scheme.len());
    let (authority, rest) = after_scheme.split_at(authority_end);
    let (userinfo, host_port) = match authority.rsplit_once('@') {
        Some((userinfo, host_port)) => (Some(userinfo), host_port),
        None => (None, authority),
    };
    let (host, port) = match host_port.strip_prefix('[') {
        Some(v6) => {
            let (host, after) = v6.split_once(']')?;
            (host, after.strip_prefix(':'))
        }
        None => match host_port.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_port, None),
        },
    };
    if host.is_empty() {
        return None;
    }
    Some(UrlParts {
        scheme,
        userinfo,
        host,
        host_port,
        port,
        rest,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_the_parts() {
        let parts = split("https://u:p@api.example.com:8443/a/b?x=1#f").unwrap();
        assert_eq!(parts.scheme, "https");
        assert_eq!(parts.userinfo, Some("u:p"));
        assert_eq!(parts.host, "api.example.com");
        assert_eq!(parts.host_port, "api.example.com:8443");
        assert_eq!(parts.port_or_default(), Some(8443));
        assert_eq!(parts.rest, "/a/b?x=1#f");

        let v6 = split("http://[::1]:4318").unwrap();
        assert_eq!((v6.host, v6.port, v6.rest), ("::1", Some("4318"), ""));
        assert_eq!(split("http://[::1]/x").unwrap().port_or_default(), Some(80));
        assert_eq!(split("HTTPS://h?q").unwrap().port_or_default(), Some(443));
        assert_eq!(split("http://h:99999/").unwrap().port_or_default(), None);
        assert_eq!(split("ftp://h/").unwrap().port_or_default(), None);
    }

    #[test]
    fn rejects_what_is_not_absolute() {
        for bad in [
            "",
            "/relative",
            "example.com",
            "://h",
            "http://",
            "http:///p",
            "http://[::1",
        ] {
            assert_eq!(split(bad), None, "{bad:?}");
        }
    }
}
