//! A fault-injecting HTTP/1.1 proxy for tests: sits between vectord and storaged on a free
//! loopback port and, per request, forwards it, answers it with an error status, or holds
//! it for a while before forwarding, as the test's rule says. One request per upstream
//! connection; bodies by `Content-Length` only (all storaged and awc traffic here).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What to do with one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Forward,
    /// Answer with this status and a JSON error body, without asking storaged.
    Fail(u16),
    /// Wait this long, then forward.
    Delay(Duration),
}

/// The rule: (method, path) → action. Can be changed while the proxy runs.
pub type Rule = Box<dyn Fn(&str, &str) -> Action + Send + Sync>;

pub struct FaultProxy {
    pub url: String,
    rule: Arc<Mutex<Rule>>,
    stop: Arc<AtomicBool>,
    /// Every request seen, as "METHOD path".
    pub seen: Arc<Mutex<Vec<String>>>,
}

impl FaultProxy {
    /// Starts a proxy in front of `upstream` (`http://127.0.0.1:PORT`) that forwards all.
    pub fn start(upstream: &str) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = listener.local_addr().expect("proxy addr").port();
        let upstream = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        let rule: Arc<Mutex<Rule>> = Arc::new(Mutex::new(Box::new(|_, _| Action::Forward)));
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (r, s, seen2) = (rule.clone(), stop.clone(), seen.clone());
        listener.set_nonblocking(true).expect("nonblocking");
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let (r, up, seen) = (r.clone(), upstream.clone(), seen2.clone());
                        std::thread::spawn(move || {
                            let _ = serve(conn, &up, &r, &seen);
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        FaultProxy {
            url: format!("http://127.0.0.1:{port}"),
            rule,
            stop,
            seen,
        }
    }

    pub fn set_rule(&self, rule: impl Fn(&str, &str) -> Action + Send + Sync + 'static) {
        *self.rule.lock().unwrap() = Box::new(rule);
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// One request: headers and body as received.
struct Request {
    method: String,
    path: String,
    head: Vec<u8>,
    body: Vec<u8>,
}

fn read_message(reader: &mut BufReader<TcpStream>) -> std::io::Result<Option<(Vec<u8>, Vec<u8>)>> {
    let mut head = Vec::new();
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(None);
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap_or(0);
            }
        }
        let end = line == "\r\n";
        head.extend_from_slice(line.as_bytes());
        if end {
            break;
        }
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body)?;
    Ok(Some((head, body)))
}

fn serve(
    conn: TcpStream,
    upstream: &str,
    rule: &Mutex<Rule>,
    seen: &Mutex<Vec<String>>,
) -> std::io::Result<()> {
    conn.set_nonblocking(false)?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut out = conn;
    while let Some((head, body)) = read_message(&mut reader)? {
        let first = String::from_utf8_lossy(&head)
            .lines()
            .next()
            .unwrap_or("")
            .to_string();
        let mut parts = first.split(' ');
        let req = Request {
            method: parts.next().unwrap_or("").to_string(),
            path: parts.next().unwrap_or("").to_string(),
            head,
            body,
        };
        seen.lock()
            .unwrap()
            .push(format!("{} {}", req.method, req.path));
        let action = (rule.lock().unwrap())(&req.method, &req.path);
        match action {
            Action::Fail(status) => {
                let body =
                    r#"{"error":{"code":"injected","message":"fault injected by the test proxy"}}"#;
                write!(
                    out,
                    "HTTP/1.1 {status} Injected\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                    body.len()
                )?;
                out.flush()?;
                continue;
            }
            Action::Delay(d) => std::thread::sleep(d),
            Action::Forward => {}
        }
        let mut up = TcpStream::connect(upstream)?;
        up.write_all(&req.head)?;
        up.write_all(&req.body)?;
        up.flush()?;
        let mut up_reader = BufReader::new(up);
        let Some((head, body)) = read_message(&mut up_reader)? else {
            return Ok(());
        };
        out.write_all(&head)?;
        out.write_all(&body)?;
        out.flush()?;
    }
    Ok(())
}
