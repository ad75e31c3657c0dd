//! A real S3-compatible server on loopback for the S3 tests (the store's
//! conformance suite, the engine's tables on S3): moto from the project's
//! Python venv, run as a child process.
//!
//! moto checks `If-None-Match` and then stores the object as two steps, and
//! its stock `moto_server` serves requests on many threads, so two racing
//! creates could both pass the check. The launcher below serves the same moto
//! application one request at a time, which makes each request atomic as real
//! S3's are; the race test then checks our side (headers and error mapping)
//! rather than moto's locking.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use tidelake_store::OpenOptions;

pub const BUCKET: &str = "tidelake";

const LAUNCHER: &str = r#"
import os, sys, threading
from werkzeug.serving import make_server
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app

app = DomainDispatcherApplication(create_backend_app)
server = make_server("127.0.0.1", 0, app, threaded=False, request_handler=MotoRequestHandler)

def exit_with_parent():
    # The test holds our stdin open; EOF means it is gone, even if killed.
    sys.stdin.read()
    os._exit(0)

threading.Thread(target=exit_with_parent, daemon=True).start()
print(server.server_port, flush=True)
server.serve_forever()
"#;

/// A running moto server; killed when dropped.
pub struct MotoServer {
    child: Child,
    _stdin: ChildStdin,
    pub port: u16,
    log: PathBuf,
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

impl MotoServer {
    /// Starts moto with a fresh bucket [`BUCKET`]. When it cannot be started
    /// the test fails if `CI` is set, and otherwise prints why and gets None.
    pub fn start_or_skip() -> Option<MotoServer> {
        match Self::start() {
            Ok(server) => Some(server),
            Err(why) if std::env::var_os("CI").is_some() => {
                panic!("CI is set but the S3 test server (moto) could not start: {why}")
            }
            Err(why) => {
                eprintln!("note: skipping the S3 run: {why}");
                None
            }
        }
    }

    fn start() -> Result<MotoServer, String> {
        let python = crate::python::find()?;
        let log = std::env::temp_dir().join(format!("tidelake-moto-{}.log", uuid_like()));
        let log_file = std::fs::File::create(&log)
            .map_err(|e| format!("cannot create {}: {e}", log.display()))?;
        let mut child = Command::new(&python)
            .arg("-c")
            .arg(LAUNCHER)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file))
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", python.display()))?;
        let stdin = child.stdin.take().ok_or("no stdin pipe")?;
        let stdout = child.stdout.take().ok_or("no stdout pipe")?;
        let (sender, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = sender.send(line);
        });
        let mut server = MotoServer {
            child,
            _stdin: stdin,
            port: 0,
            log,
        };
        let line = receiver
            .recv_timeout(Duration::from_secs(60))
            .map_err(|_| {
                format!(
                    "moto did not report its port within 60 s; {}",
                    server.log_tail()
                )
            })?;
        server.port = line.trim().parse().map_err(|_| {
            format!(
                "moto did not start (is 'moto[server]' installed in {}?); {}",
                python.display(),
                server.log_tail()
            )
        })?;
        server.create_bucket(BUCKET)?;
        Ok(server)
    }

    /// Options that point a warehouse at this server.
    pub fn options(&self) -> OpenOptions {
        let pairs = [
            ("aws_endpoint", format!("http://127.0.0.1:{}", self.port)),
            ("aws_allow_http", "true".to_string()),
            ("aws_access_key_id", "test".to_string()),
            ("aws_secret_access_key", "test".to_string()),
            ("aws_region", "us-east-1".to_string()),
        ];
        OpenOptions {
            s3_options: pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
            allow_unsafe_commits: false,
        }
    }

    /// Makes another bucket (moto accepts unsigned requests: a bare HTTP PUT).
    pub fn create_bucket(&self, bucket: &str) -> Result<(), String> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port))
            .map_err(|e| format!("cannot connect to moto: {e}"))?;
        let request = format!(
            "PUT /{bucket} HTTP/1.0\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\n\r\n",
            self.port
        );
        stream
            .write_all(request.as_bytes())
            .map_err(|e| format!("cannot send create-bucket: {e}"))?;
        let mut response = String::new();
        stream
            .read_to_string(&mut response)
            .map_err(|e| format!("cannot read create-bucket reply: {e}"))?;
        let status = response.lines().next().unwrap_or_default();
        if status.contains(" 200 ") {
            Ok(())
        } else {
            Err(format!(
                "moto refused to create bucket '{bucket}': {status}"
            ))
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(15).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        format!("moto's stderr ends with:\n{}", tail.join("\n"))
    }
}

fn uuid_like() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{}-{nanos}", std::process::id())
}
