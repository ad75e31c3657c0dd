//! Child processes whose every wait is bounded: reader threads collect
//! stdout and stderr as they come and signal a condition variable, so a
//! test waits for output or for the end of the child instead of sleeping,
//! and joins the readers before it looks at what was printed.

use std::io::{Read, Write};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often the end of a child is checked once its pipes have closed (or
/// while a caller waits for its exit). `Child` has no wait with a timeout.
const EXIT_POLL: Duration = Duration::from_millis(5);

/// How long the output of an ended child may take to reach its readers.
const DRAIN_GRACE: Duration = Duration::from_secs(10);

/// A child that ran to its end.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// How a wait for output ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Waited {
    /// The condition holds.
    Met,
    /// Both pipes closed (the child is gone) and the condition never held.
    Closed,
    /// The timeout passed first.
    TimedOut,
}

#[derive(Default)]
struct Pipes {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    open: usize,
}

#[derive(Default)]
struct Shared {
    pipes: Mutex<Pipes>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Pipes> {
        // A reader thread never panics while holding the lock; a poisoned
        // lock still holds valid bytes.
        self.pipes.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A running child with its output collected; killed if dropped running.
pub struct Spawned {
    child: Child,
    description: String,
    shared: Arc<Shared>,
    readers: Vec<JoinHandle<()>>,
    writer: Option<JoinHandle<()>>,
    status: Option<ExitStatus>,
}

impl Spawned {
    /// Starts `command` with stdout and stderr piped and stdin empty.
    pub fn start(command: &mut Command) -> Spawned {
        Self::start_with_stdin(command, None)
    }

    /// Starts `command` and feeds it `stdin` (then closes it), or gives it
    /// no stdin at all when `None`.
    pub fn start_with_stdin(command: &mut Command, stdin: Option<&str>) -> Spawned {
        let description = format!("{command:?}");
        let mut child = command
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {description}: {e}"));
        let shared = Arc::new(Shared::default());
        let mut readers = Vec::new();
        if let Some(pipe) = child.stdout.take() {
            readers.push(collect(pipe, shared.clone(), |p| &mut p.stdout));
        }
        if let Some(pipe) = child.stderr.take() {
            readers.push(collect(pipe, shared.clone(), |p| &mut p.stderr));
        }
        let writer = match (child.stdin.take(), stdin) {
            (Some(mut pipe), Some(text)) => {
                let text = text.to_string();
                Some(std::thread::spawn(move || {
                    // A child that exits early closes the pipe; its exit
                    // status tells why.
                    let _ = pipe.write_all(text.as_bytes());
                }))
            }
            _ => None,
        };
        Spawned {
            child,
            description,
            shared,
            readers,
            writer,
            status: None,
        }
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// What the child has printed on stdout so far.
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.shared.lock().stdout).into_owned()
    }

    /// What the child has printed on stderr so far.
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.shared.lock().stderr).into_owned()
    }

    /// Waits until `met` holds for stdout, the child closes its pipes, or
    /// `timeout` passes; woken by every chunk the child prints.
    pub fn wait_for_stdout(&self, timeout: Duration, met: impl Fn(&str) -> bool) -> Waited {
        let pipes = self.wait_until(Instant::now() + timeout, |pipes| {
            met(&String::from_utf8_lossy(&pipes.stdout)) || pipes.open == 0
        });
        if met(&String::from_utf8_lossy(&pipes.stdout)) {
            Waited::Met
        } else if pipes.open == 0 {
            Waited::Closed
        } else {
            Waited::TimedOut
        }
    }

    /// Like [`Spawned::wait_for_stdout`], for stderr (where long-running
    /// commands print their progress).
    pub fn wait_for_stderr(&self, timeout: Duration, met: impl Fn(&str) -> bool) -> Waited {
        let pipes = self.wait_until(Instant::now() + timeout, |pipes| {
            met(&String::from_utf8_lossy(&pipes.stderr)) || pipes.open == 0
        });
        if met(&String::from_utf8_lossy(&pipes.stderr)) {
            Waited::Met
        } else if pipes.open == 0 {
            Waited::Closed
        } else {
            Waited::TimedOut
        }
    }

    /// Waits until stdout contains `needle`; panics with both outputs (and
    /// kills the child) if it exits without printing it or `timeout` passes.
    pub fn expect_stdout(&mut self, needle: &str, timeout: Duration) {
        match self.wait_for_stdout(timeout, |out| out.contains(needle)) {
            Waited::Met => {}
            Waited::Closed => panic!(
                "{} exited without printing {needle:?}\nstdout:\n{}\nstderr:\n{}",
                self.description,
                self.stdout(),
                self.stderr()
            ),
            Waited::TimedOut => {
                self.kill();
                panic!(
                    "{} printed no {needle:?} within {timeout:?}\nstdout:\n{}\nstderr:\n{}",
                    self.description,
                    self.stdout(),
                    self.stderr()
                )
            }
        }
    }

    /// The exit status if the child has ended, without waiting.
    pub fn try_status(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self
                .child
                .try_wait()
                .unwrap_or_else(|e| panic!("cannot wait for {}: {e}", self.description));
        }
        self.status
    }

    /// Waits at most `timeout` for the child to end: first for its pipes to
    /// close (woken by the readers), then for its exit status. Once it has
    /// ended, all it printed has been collected.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        self.wait_pipes_closed(deadline);
        let status = loop {
            if let Some(status) = self.try_status() {
                break status;
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            std::thread::sleep(left.min(EXIT_POLL));
        };
        // The child is gone, so its pipes reach EOF at once unless a process
        // it started still holds them.
        self.wait_pipes_closed(Instant::now() + DRAIN_GRACE);
        Some(status)
    }

    fn wait_pipes_closed(&self, deadline: Instant) {
        drop(self.wait_until(deadline, |pipes| pipes.open == 0));
    }

    /// Blocks until `done` holds for the pipes or `deadline` passes, woken
    /// by the readers; returns the pipes as they are then.
    fn wait_until(
        &self,
        deadline: Instant,
        done: impl Fn(&Pipes) -> bool,
    ) -> MutexGuard<'_, Pipes> {
        let mut pipes = self.shared.lock();
        while !done(&pipes) {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                break;
            };
            pipes = self
                .shared
                .changed
                .wait_timeout(pipes, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        pipes
    }

    /// Sends SIGKILL (if the child still runs) and reaps it.
    pub fn kill(&mut self) -> ExitStatus {
        if let Some(status) = self.try_status() {
            return status;
        }
        // Fails only if the child is already reaped, which try_status rules out.
        let _ = self.child.kill();
        let status = self
            .child
            .wait()
            .unwrap_or_else(|e| panic!("cannot reap {}: {e}", self.description));
        self.status = Some(status);
        self.wait_pipes_closed(Instant::now() + DRAIN_GRACE);
        status
    }

    /// Sends a signal by name (`TERM`, `INT`) with `kill(1)`.
    pub fn signal(&mut self, name: &str) {
        assert!(
            self.try_status().is_none(),
            "{} ended before SIG{name}",
            self.description
        );
        let sent = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.id().to_string())
            .status()
            .unwrap_or_else(|e| panic!("cannot run kill: {e}"));
        assert!(sent.success(), "kill -{name} {} failed", self.id());
    }

    /// Waits for the end of the child (killing it and failing after
    /// `timeout`), joins the reader threads and returns everything.
    pub fn finish(mut self, timeout: Duration) -> Finished {
        let Some(status) = self.wait_exit(timeout) else {
            self.kill();
            panic!(
                "{} did not finish within {timeout:?}\nstdout:\n{}\nstderr:\n{}",
                self.description,
                self.stdout(),
                self.stderr()
            );
        };
        self.join_threads();
        Finished {
            status,
            stdout: self.stdout(),
            stderr: self.stderr(),
        }
    }

    fn join_threads(&mut self) {
        // The readers end at EOF, which the child's exit brings; a pipe a
        // process the child started still holds is left to its reader.
        if self.shared.lock().open == 0 {
            for reader in self.readers.drain(..) {
                let _ = reader.join();
            }
        }
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        // A failing test must not leave its children running.
        if self.status.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Reads `pipe` to its end into the buffer `field` picks, signalling each chunk.
fn collect(
    mut pipe: impl Read + Send + 'static,
    shared: Arc<Shared>,
    field: fn(&mut Pipes) -> &mut Vec<u8>,
) -> JoinHandle<()> {
    shared.lock().open += 1;
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        loop {
            let n = pipe.read(&mut buf).unwrap_or(0);
            let mut pipes = shared.lock();
            if n == 0 {
                pipes.open -= 1;
                shared.changed.notify_all();
                return;
            }
            field(&mut pipes).extend_from_slice(&buf[..n]);
            shared.changed.notify_all();
        }
    })
}

/// Runs `command` to its end, feeding `stdin`, killing it after `timeout`.
pub fn run(command: &mut Command, stdin: &str, timeout: Duration) -> Finished {
    Spawned::start_with_stdin(command, Some(stdin)).finish(timeout)
}

/// Polls `condition` (every few milliseconds) until it holds or `timeout`
/// passes; for conditions nothing signals, like a file appearing.
pub fn wait_until(timeout: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !condition() {
        assert!(Instant::now() < deadline, "{what}: not within {timeout:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}
