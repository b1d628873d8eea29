//! A minimal HTTP/1.1 keep-alive client for the search measurements, so that the client
//! costs as little as possible of the two cores it shares with the server (as `wrk` does):
//! one connection per thread, each request written in one piece from pre-built bytes,
//! answers read by `Content-Length`.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;

/// Vectors go out as base64 of little-endian f32 (`--base64`), else as JSON numbers.
pub static BASE64: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// A vector as a request body holds it (see `BASE64`).
pub fn vector(v: &[f32]) -> serde_json::Value {
    if BASE64.load(std::sync::atomic::Ordering::Relaxed) {
        use base64::Engine;
        let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        serde_json::Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
    } else {
        serde_json::json!(v)
    }
}

struct Conn {
    writer: TcpStream,
    reader: BufReader<TcpStream>,
}

thread_local! {
    static CONNS: RefCell<HashMap<String, Conn>> = RefCell::new(HashMap::new());
}

/// A whole `POST` request for `addr` (`127.0.0.1:PORT`), ready to write.
pub fn post_request(addr: &str, path: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

/// Sends a pre-built request on this thread's connection to `addr`; returns the status
/// and the body of the answer.
pub fn send(addr: &str, request: &[u8]) -> Result<(u16, Vec<u8>), String> {
    CONNS.with(|conns| {
        let mut conns = conns.borrow_mut();
        if !conns.contains_key(addr) {
            let stream = TcpStream::connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
            stream.set_nodelay(true).map_err(|e| e.to_string())?;
            let reader = BufReader::new(stream.try_clone().map_err(|e| e.to_string())?);
            conns.insert(
                addr.to_string(),
                Conn {
                    writer: stream,
                    reader,
                },
            );
        }
        let conn = conns.get_mut(addr).ok_or("no connection")?;
        let result = exchange(conn, request);
        if result.is_err() {
            conns.remove(addr);
        }
        result
    })
}

fn exchange(conn: &mut Conn, request: &[u8]) -> Result<(u16, Vec<u8>), String> {
    conn.writer
        .write_all(request)
        .map_err(|e| format!("write: {e}"))?;
    let mut line = String::new();
    conn.reader
        .read_line(&mut line)
        .map_err(|e| format!("read: {e}"))?;
    let status: u16 = line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line {line:?}"))?;
    let mut length = 0usize;
    loop {
        line.clear();
        conn.reader
            .read_line(&mut line)
            .map_err(|e| format!("read: {e}"))?;
        if line == "\r\n" || line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().map_err(|_| "bad content-length")?;
            }
        }
    }
    let mut body = vec![0u8; length];
    conn.reader
        .read_exact(&mut body)
        .map_err(|e| format!("read body: {e}"))?;
    Ok((status, body))
}
