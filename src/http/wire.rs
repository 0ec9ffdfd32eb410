//! The HTTP layer's own errors, as JSON. actix-http answers a request it cannot parse (400: a
//! malformed or conflicting header), whose head is too large (431) or too slow (408) itself,
//! below the application, with an empty body. [`JsonProtocolErrors`] wraps each connection
//! and rewrites exactly those answers, so every error a client gets is JSON with a code.
//! Application answers always carry a body, so an empty-bodied 400/408/431 is the
//! dispatcher's, and nothing else is touched.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::http::error::ErrorCode;

/// A connection whose protocol-level error answers are rewritten as JSON.
pub struct JsonProtocolErrors<T> {
    io: T,
    /// A rewritten answer not yet fully written.
    pending: Vec<u8>,
    written: usize,
}

impl<T> JsonProtocolErrors<T> {
    pub fn new(io: T) -> Self {
        Self {
            io,
            pending: Vec::new(),
            written: 0,
        }
    }
}

impl<T: AsyncWrite + Unpin> JsonProtocolErrors<T> {
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.pending.len() {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &self.pending[self.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        self.pending.clear();
        self.written = 0;
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for JsonProtocolErrors<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for JsonProtocolErrors<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        ready!(self.poll_pending(cx))?;
        let Some(answer) = as_json(buf) else {
            return Pin::new(&mut self.io).poll_write(cx, buf);
        };
        // The answer is ours to write now; flush and shutdown finish it.
        self.pending = answer;
        if let Poll::Ready(Err(e)) = self.poll_pending(cx) {
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// The JSON version of a dispatcher's empty-bodied error answer; `None` for anything else.
fn as_json(answer: &[u8]) -> Option<Vec<u8>> {
    let head = answer.strip_suffix(b"\r\n\r\n")?;
    let status = head.strip_prefix(b"HTTP/1.1 ")?.get(..3)?;
    let (code, msg) = match status {
        b"400" => (
            ErrorCode::MalformedRequest,
            "the request is not valid HTTP/1.1 (a malformed, conflicting or duplicate header)",
        ),
        b"408" => (
            ErrorCode::RequestTimeout,
            "the request's headers did not arrive in time",
        ),
        b"431" => (
            ErrorCode::HeadersTooLarge,
            "the request's headers are too large or too many",
        ),
        _ => return None,
    };
    let text = std::str::from_utf8(head).ok()?;
    let mut lines: Vec<&str> = text.split("\r\n").collect();
    let empty = lines
        .iter()
        .position(|l| l.eq_ignore_ascii_case("content-length: 0"))?;
    lines.remove(empty);
    let body = serde_json::json!({ "code": code.as_str(), "msg": msg }).to_string();
    let length = format!("content-length: {}", body.len());
    lines.push("content-type: application/json");
    lines.push(&length);
    Some(format!("{}\r\n\r\n{body}", lines.join("\r\n")).into_bytes())
}

#[cfg(test)]
mod tests {
    use super::as_json;

    #[test]
    fn the_dispatchers_empty_errors_become_json() {
        let raw = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\nconnection: close\r\ndate: x\r\n\r\n";
        let json = String::from_utf8(as_json(raw).unwrap()).unwrap();
        let (head, body) = json.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 431 "));
        assert!(head.contains("content-type: application/json"));
        assert!(head.contains(&format!("content-length: {}", body.len())));
        assert!(!head.contains("content-length: 0"));
        let body: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(body["code"], "headers_too_large");
    }

    #[test]
    fn application_answers_and_successes_pass_untouched() {
        let app = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 20\r\n\r\n{\"code\":\"x\"}";
        assert!(as_json(app).is_none());
        assert!(as_json(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").is_none());
        assert!(as_json(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 10\r\n\r\n").is_none());
    }
}
