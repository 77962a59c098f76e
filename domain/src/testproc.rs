//! Helpers for tests that run the product's binaries as child processes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

/// A local port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("binding an ephemeral port")
        .local_addr()
        .expect("local address")
        .port()
}

/// Sends SIGTERM and waits up to 15 s for the process to exit on its own.
pub fn terminate(child: &mut Child) -> ExitStatus {
    let sent = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("running kill");
    assert!(sent.success(), "kill -TERM failed");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(s) = child.try_wait().expect("waiting for the child") {
            return s;
        }
        assert!(Instant::now() < deadline, "no graceful exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}
