//! The real `cdr-exporter` binary as a child process: started on port 0, its stderr read line
//! by line, stopped with SIGTERM or SIGKILL; killed and reaped when dropped.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::Reaped;

pub fn exe() -> &'static str {
    env!("CARGO_BIN_EXE_cdr-exporter")
}

/// A running exporter process.
pub struct Exporter {
    pub child: Reaped,
    pub addr: SocketAddr,
    /// Every stderr line so far (a reader thread appends).
    lines: Arc<Mutex<Vec<String>>>,
}

impl Exporter {
    /// Starts the binary with `args` and `env` (listening on 127.0.0.1:0 unless `args` say
    /// otherwise) and waits for its "listening" line.
    pub fn start(args: &[&str], env: &[(&str, &str)]) -> Exporter {
        let mut cmd = Command::new(exe());
        cmd.args(args)
            .env("CDR_EXPORTER_LISTEN", "127.0.0.1:0")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = Reaped(cmd.spawn().expect("spawn cdr-exporter"));
        let stderr = child.stderr.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let mut e = Exporter {
            child,
            addr: "0.0.0.0:0".parse().unwrap(),
            lines,
        };
        let line = e.wait_log(Duration::from_secs(30), |l| {
            l.contains("cdr-exporter listening")
        });
        let addr = line
            .split("addr=")
            .nth(1)
            .and_then(|a| a.split_whitespace().next())
            .unwrap_or_else(|| panic!("no address in {line:?}"));
        e.addr = addr.parse().unwrap();
        e
    }

    /// Every stderr line so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// Waits for a stderr line matching `f`; panics with the log if none comes in time.
    pub fn wait_log(&mut self, deadline: Duration, f: impl Fn(&str) -> bool) -> String {
        let end = Instant::now() + deadline;
        loop {
            if let Some(l) = self.lines.lock().unwrap().iter().find(|l| f(l)) {
                return l.clone();
            }
            if let Some(st) = self.child.try_wait().unwrap() {
                // Let the reader thread take what is left.
                std::thread::sleep(Duration::from_millis(100));
                if let Some(l) = self.lines.lock().unwrap().iter().find(|l| f(l)) {
                    return l.clone();
                }
                panic!(
                    "exporter exited ({st}) without the expected line:\n{}",
                    self.lines().join("\n")
                );
            }
            if Instant::now() > end {
                panic!(
                    "no expected log line after {deadline:?}:\n{}",
                    self.lines().join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, then waits for the exit status.
    pub fn sigterm(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success());
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            assert!(Instant::now() < deadline, "did not exit after SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, waits for the exit, and returns every line it wrote (all of them read).
    pub fn lines_after_exit(self) -> Vec<String> {
        let lines = self.lines.clone();
        let st = self.sigterm();
        assert!(st.success(), "{st}");
        // The reader thread drops its handle at EOF, right after the exit.
        let end = Instant::now() + Duration::from_secs(10);
        while Arc::strong_count(&lines) > 1 && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(10));
        }
        let v = lines.lock().unwrap().clone();
        v
    }

    /// SIGKILL: no final snapshot, no flush.
    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}
