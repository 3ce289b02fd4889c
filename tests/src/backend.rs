//! Tiny backends for traffic tests, on loopback: each answers with its own name.
//!
//! - An HTTP request (`GET`, `HEAD`, …) gets `200 OK` with the name as body, and the
//!   connection closes (`/host-is/NAME` answers `421` unless the `Host` header is NAME).
//! - Any other first line is raw TCP: `hold` turns the connection into a line echo that lasts
//!   until the client closes it (a long-lived connection); anything else gets the name and a
//!   newline.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

pub struct Backend {
    pub name: String,
    pub address: SocketAddr,
    serving: Option<(Arc<AtomicBool>, JoinHandle<()>)>,
}

impl Backend {
    /// Starts a backend called `name` on a free port of 127.0.0.1.
    pub fn start(name: &str) -> Self {
        Self::start_on(name, "127.0.0.1")
    }

    /// Starts a backend called `name` on a free port of loopback address `ip` (`::1` for IPv6).
    pub fn start_on(name: &str, ip: &str) -> Self {
        let ip: std::net::IpAddr = ip.parse().expect("an IP address");
        let listener = TcpListener::bind((ip, 0)).expect("bind a backend");
        let address = listener.local_addr().expect("backend address");
        let mut backend = Self {
            name: name.to_owned(),
            address,
            serving: None,
        };
        backend.serve(listener);
        backend
    }

    pub fn port(&self) -> u16 {
        self.address.port()
    }

    fn serve(&mut self, listener: TcpListener) {
        let stop = Arc::new(AtomicBool::new(false));
        let name = self.name.clone();
        let stopping = stop.clone();
        // Polled, not woken by a connection of its own: the address may be gone by the time
        // the backend stops (a gateway its test's provisioner removed).
        listener
            .set_nonblocking(true)
            .expect("a non-blocking listener");
        let thread = std::thread::spawn(move || {
            while !stopping.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let _ = stream.set_nonblocking(false);
                        let name = name.clone();
                        std::thread::spawn(move || answer(stream, &name));
                    }
                    // Woken by the next connection at once, or to look at `stopping`.
                    Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {
                        use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
                        use std::os::fd::AsFd as _;
                        let mut waiting = [PollFd::new(listener.as_fd(), PollFlags::POLLIN)];
                        let _ = poll(&mut waiting, PollTimeout::from(50u8));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        self.serving = Some((stop, thread));
    }

    /// Stops listening: new connections are refused.
    pub fn stop(&mut self) {
        if let Some((stop, thread)) = self.serving.take() {
            stop.store(true, Ordering::SeqCst);
            let _ = thread.join();
        }
    }

    /// Listens again on the same address.
    pub fn restart(&mut self) {
        if self.serving.is_some() {
            return;
        }
        let listener = TcpListener::bind(self.address).expect("rebind a backend");
        self.serve(listener);
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.stop();
    }
}

fn answer(stream: TcpStream, name: &str) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(60)));
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    let mut first = String::new();
    if reader.read_line(&mut first).unwrap_or(0) == 0 {
        return;
    }
    let http = ["GET ", "HEAD ", "POST ", "OPTIONS "]
        .iter()
        .any(|method| first.starts_with(method));
    if http {
        // The rest of the head, up to the blank line. `GET /headers` also answers the
        // `X-Forwarded-*` and `X-SSL-*` headers the request arrived with, one per line after
        // the name.
        let mut body = name.to_owned();
        let echo = first.starts_with("GET /headers ");
        let mut host = None;
        let mut line = String::new();
        while reader.read_line(&mut line).unwrap_or(0) > 0 && line != "\r\n" {
            let lower = line.to_ascii_lowercase();
            if echo && (lower.starts_with("x-forwarded-") || lower.starts_with("x-ssl-")) {
                body.push('\n');
                body.push_str(line.trim_end());
            }
            if let Some(value) = lower.strip_prefix("host:") {
                host = Some(value.trim().to_owned());
            }
            line.clear();
        }
        // `/host-is/NAME`: 200 only to a request whose Host header is NAME (a health check
        // that must name its site), else 421.
        let wanted = first
            .split_whitespace()
            .nth(1)
            .and_then(|path| path.strip_prefix("/host-is/"));
        let status = match wanted {
            Some(wanted) if host.as_deref() != Some(wanted) => "421 Misdirected Request",
            _ => "200 OK",
        };
        // One write: a head and a body in separate small segments wait on the client's
        // delayed acknowledgement (Nagle), some 40 ms a request.
        let response = format!(
            "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = writer.write_all(response.as_bytes());
        let _ = writer.shutdown(Shutdown::Write);
        return;
    }
    if first.trim() == "hold" {
        let _ = writeln!(writer, "{name} holding");
        let mut line = String::new();
        while reader.read_line(&mut line).unwrap_or(0) > 0 {
            let _ = writeln!(writer, "{name}: {}", line.trim());
            line.clear();
        }
        return;
    }
    let _ = writeln!(writer, "{name}");
    let _ = writer.shutdown(Shutdown::Write);
}

/// An answer to [`http_request`].
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    /// The head's header lines.
    pub head: String,
    pub body: String,
}

impl Answer {
    /// The value of header `name`, if the answer has it.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name).then(|| value.trim())
        })
    }
}

/// `GET path` on `address` with `Host: host` and `headers`, through a new connection.
pub fn http_request(
    address: SocketAddr,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Option<Answer> {
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some(Answer {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    })
}

/// `GET /` on `address` through a new connection; the body, or `None` when it fails.
pub fn http_get(address: SocketAddr) -> Option<String> {
    let answer = http_request(address, &address.to_string(), "/", &[])?;
    (answer.status == 200).then_some(answer.body)
}

/// One raw TCP exchange: sends a line, returns the first line answered.
pub fn tcp_line(address: SocketAddr, line: &str) -> Option<String> {
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    writeln!(stream, "{line}").ok()?;
    let mut answer = String::new();
    BufReader::new(stream).read_line(&mut answer).ok()?;
    (!answer.is_empty()).then(|| answer.trim().to_owned())
}

/// A long-lived connection through a TCP listener: every line sent comes back from the same
/// backend.
pub struct Held {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    /// The backend that holds it.
    pub backend: String,
}

impl Held {
    pub fn open(address: SocketAddr) -> Option<Self> {
        let stream = TcpStream::connect_timeout(&address, Duration::from_secs(2)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        let mut writer = stream.try_clone().ok()?;
        writeln!(writer, "hold").ok()?;
        let mut reader = BufReader::new(stream);
        let mut greeting = String::new();
        reader.read_line(&mut greeting).ok()?;
        let backend = greeting.strip_suffix(" holding\n")?.to_owned();
        Some(Self {
            reader,
            writer,
            backend,
        })
    }

    /// Sends `line` and returns the echo, or `None` when the connection is gone.
    pub fn echo(&mut self, line: &str) -> Option<String> {
        writeln!(self.writer, "{line}").ok()?;
        let mut answer = String::new();
        if self.reader.read_line(&mut answer).ok()? == 0 {
            return None;
        }
        Some(answer.trim().to_owned())
    }
}

/// Whether something accepts TCP connections at `address`.
pub fn accepts(address: SocketAddr) -> bool {
    TcpStream::connect_timeout(&address, Duration::from_millis(500)).is_ok()
}
