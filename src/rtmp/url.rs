//! `rtmp://` and `rtmps://` URLs: where the upstream is and what to call its application.

use std::fmt;

use super::error::RtmpError;

/// Transport of an RTMP URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// Plain TCP, default port 1935.
    Rtmp,
    /// TLS over TCP, default port 443.
    Rtmps,
}

/// A parsed `rtmp[s]://host[:port]/app` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtmpUrl {
    /// Transport.
    pub scheme: Scheme,
    /// Host name or IP address (without IPv6 brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Application: the whole path without surrounding slashes (may contain `/`).
    pub app: String,
}

impl RtmpUrl {
    /// Parses a URL; the path is the application (stream keys are added per stream).
    pub fn parse(url: &str) -> Result<RtmpUrl, RtmpError> {
        let bad = |reason| RtmpError::Url {
            url: url.to_owned(),
            reason,
        };
        let (scheme, rest) = if let Some(rest) = url.strip_prefix("rtmp://") {
            (Scheme::Rtmp, rest)
        } else if let Some(rest) = url.strip_prefix("rtmps://") {
            (Scheme::Rtmps, rest)
        } else {
            return Err(bad("scheme must be rtmp:// or rtmps://"));
        };
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6
                .split_once(']')
                .ok_or_else(|| bad("unclosed '[' in host"))?;
            (host, after.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(bad("missing host"));
        }
        let port = match port {
            Some(p) => p
                .parse::<u16>()
                .map_err(|_| bad("port is not a number 1-65535"))?,
            None if scheme == Scheme::Rtmps => 443,
            None => 1935,
        };
        let app = path.trim_matches('/').to_owned();
        if app.is_empty() {
            return Err(bad("missing application path (rtmp://host/app)"));
        }
        Ok(RtmpUrl {
            scheme,
            host: host.to_owned(),
            port,
            app,
        })
    }

    /// The `tcUrl` a client announces in `connect`.
    pub fn tc_url(&self) -> String {
        self.to_string()
    }

    /// `host:port` for dialing.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Display for RtmpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match self.scheme {
            Scheme::Rtmp => "rtmp",
            Scheme::Rtmps => "rtmps",
        };
        write!(f, "{scheme}://{}/{}", self.authority(), self.app)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_common_shapes() {
        let u = RtmpUrl::parse("rtmp://127.0.0.1:1936/live").expect("valid");
        assert_eq!(
            (u.scheme, u.host.as_str(), u.port, u.app.as_str()),
            (Scheme::Rtmp, "127.0.0.1", 1936, "live")
        );
        let u = RtmpUrl::parse("rtmps://live-api-s.facebook.com/rtmp/").expect("valid");
        assert_eq!((u.port, u.app.as_str()), (443, "rtmp"));
        let u = RtmpUrl::parse("rtmp://[::1]/app/inst").expect("valid");
        assert_eq!(
            (u.host.as_str(), u.port, u.app.as_str()),
            ("::1", 1935, "app/inst")
        );
        assert_eq!(u.tc_url(), "rtmp://[::1]:1935/app/inst");
    }

    #[test]
    fn rejects_what_cannot_work() {
        for bad in [
            "http://x/app",
            "rtmp://",
            "rtmp://host",
            "rtmp://host:99999/app",
            "rtmp://[::1/app",
        ] {
            assert!(RtmpUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
