//! Processes a lab starts inside its namespaces, and packet captures.
//!
//! A [`LabChild`] writes its standard output and error to files in the lab's work directory
//! (no pipe can fill up and stall it), and is killed when dropped. The lab itself also kills
//! whatever still runs in its namespaces when it is dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::{LabError, Result};

/// How a finished child ended, with everything it printed.
#[derive(Debug, Clone)]
pub struct ChildOutput {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// A process running inside a lab namespace; killed (SIGKILL) on drop if still running.
#[derive(Debug)]
pub struct LabChild {
    child: Child,
    label: String,
    stdout_path: PathBuf,
    stderr_path: PathBuf,
    status: Option<ExitStatus>,
}

fn read_lossy(path: &Path) -> String {
    std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

impl LabChild {
    pub(crate) fn new(
        child: Child,
        label: String,
        stdout_path: PathBuf,
        stderr_path: PathBuf,
    ) -> Self {
        LabChild {
            child,
            label,
            stdout_path,
            stderr_path,
            status: None,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `host: program` — for messages.
    pub fn label(&self) -> &str {
        &self.label
    }

    pub fn stdout_path(&self) -> &Path {
        &self.stdout_path
    }

    pub fn stderr_path(&self) -> &Path {
        &self.stderr_path
    }

    /// What it has printed on standard output so far.
    pub fn stdout(&self) -> String {
        read_lossy(&self.stdout_path)
    }

    pub fn stderr(&self) -> String {
        read_lossy(&self.stderr_path)
    }

    /// Whether it still runs (reaps it when it has ended).
    pub fn is_running(&mut self) -> bool {
        if self.status.is_some() {
            return false;
        }
        match self.child.try_wait() {
            Ok(Some(status)) => {
                self.status = Some(status);
                false
            }
            Ok(None) => true,
            Err(_) => false,
        }
    }

    /// Sends a signal (a no-op once it has ended).
    pub fn signal(&mut self, sig: Signal) -> Result<()> {
        if !self.is_running() {
            return Ok(());
        }
        let pid = i32::try_from(self.child.id())
            .map_err(|_| LabError::Check(format!("{}: pid out of range", self.label)))?;
        kill(Pid::from_raw(pid), sig)
            .map_err(|e| LabError::sys(format!("signal {sig} to {}", self.label), e))
    }

    /// Waits until `needle` appears in its standard output or error. Fails early, with what
    /// it printed, if it ends first.
    pub fn wait_for_output(&mut self, needle: &str, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.stdout().contains(needle) || self.stderr().contains(needle) {
                return Ok(());
            }
            if !self.is_running() {
                // It may have printed the line just before exiting.
                if self.stdout().contains(needle) || self.stderr().contains(needle) {
                    return Ok(());
                }
                return Err(LabError::Command {
                    command: self.label.clone(),
                    status: self.status.map(|s| s.to_string()).unwrap_or_default(),
                    stderr: format!(
                        "ended before printing {needle:?}: {}{}",
                        self.stdout().trim(),
                        self.stderr().trim()
                    ),
                });
            }
            if Instant::now() >= deadline {
                return Err(LabError::Timeout {
                    what: format!("{:?} from {}", needle, self.label),
                    millis: timeout.as_millis(),
                });
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Waits for it to end by itself, at most `timeout` (then it is killed and an error returned).
    pub fn wait(mut self, timeout: Duration) -> Result<ChildOutput> {
        let deadline = Instant::now() + timeout;
        while self.is_running() {
            if Instant::now() >= deadline {
                let _ = self.signal(Signal::SIGKILL);
                return Err(LabError::Timeout {
                    what: format!("{} to end", self.label),
                    millis: timeout.as_millis(),
                });
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        self.output()
    }

    /// Asks it to stop (SIGTERM), kills it after `grace`, and returns its output.
    pub fn stop(mut self, grace: Duration) -> Result<ChildOutput> {
        self.signal(Signal::SIGTERM)?;
        let deadline = Instant::now() + grace;
        while self.is_running() {
            if Instant::now() >= deadline {
                self.signal(Signal::SIGKILL)?;
                let status = self
                    .child
                    .wait()
                    .map_err(|e| LabError::io(format!("waiting for {}", self.label), e))?;
                self.status = Some(status);
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        self.output()
    }

    fn output(&mut self) -> Result<ChildOutput> {
        let status = match self.status {
            Some(s) => s,
            None => {
                let s = self
                    .child
                    .wait()
                    .map_err(|e| LabError::io(format!("waiting for {}", self.label), e))?;
                self.status = Some(s);
                s
            }
        };
        Ok(ChildOutput {
            status,
            stdout: self.stdout(),
            stderr: self.stderr(),
        })
    }
}

impl Drop for LabChild {
    fn drop(&mut self) {
        if self.is_running() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// How long [`super::Lab::capture`] waits after dumpcap reports that it captures: about 10
/// ms are needed, measured.
pub const CAPTURE_SETTLE: Duration = Duration::from_millis(100);

/// How long [`Capture::stop`] waits for packets still in the kernel's capture ring.
pub const CAPTURE_DRAIN: Duration = Duration::from_millis(400);

/// A running capture (dumpcap); stopped (and its file kept) on [`Capture::stop`], killed
/// on drop.
#[derive(Debug)]
pub struct Capture {
    child: Option<LabChild>,
    path: PathBuf,
}

impl Capture {
    pub(crate) fn new(child: LabChild, path: PathBuf) -> Self {
        Capture {
            child: Some(child),
            path,
        }
    }

    /// Where the pcapng file is written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stops the capture cleanly (SIGTERM lets dumpcap flush) and returns the file's path.
    /// Takes [`CAPTURE_DRAIN`] longer: libpcap hands packets over in blocks that are
    /// released after its read timeout (250 ms in dumpcap), and a block still open at SIGTERM
    /// is dropped, losing the last packets.
    pub fn stop(mut self) -> Result<PathBuf> {
        if let Some(child) = self.child.take() {
            std::thread::sleep(CAPTURE_DRAIN);
            let label = child.label().to_owned();
            let out = child.stop(Duration::from_secs(5))?;
            if !self.path.exists() {
                return Err(LabError::Command {
                    command: label,
                    status: out.status.to_string(),
                    stderr: format!("no capture file written: {}", out.stderr.trim()),
                });
            }
        }
        Ok(self.path.clone())
    }
}
