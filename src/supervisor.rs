//! Runs the started VM to its end, as the container's PID 1: turns stop
//! signals into an ACPI power-button press over QMP, pins vCPU threads,
//! reaps children, and turns the guest's outcome into the exit status.

use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;

use anyhow::Result;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::Signal;
use nix::sys::signalfd::SignalFd;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::qmp::{self, Message, Shutdown};
use crate::LOG_PREFIX;

/// Exit status when the VM was ended from the host (ctrl-a x, the monitor's
/// `quit`) rather than by the guest powering off.
pub const EXIT_ABORTED: i32 = 130;
/// Signals that ask the guest to power off (podman stop sends SIGTERM).
pub const STOP_SIGNALS: [Signal; 5] = [
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGPWR,
];

/// The container's exit status for how QEMU ended.
pub fn exit_status(qemu: WaitStatus, shutdown: Option<&Shutdown>) -> i32 {
    match qemu {
        WaitStatus::Exited(_, 0) => match shutdown {
            Some(s) if s.guest => 0,
            _ => EXIT_ABORTED,
        },
        WaitStatus::Exited(_, code) => code,
        WaitStatus::Signaled(_, sig, _) => 128 + sig as i32,
        _ => 1,
    }
}

/// The runner's side of the QMP connection.
pub struct QmpSession {
    stream: UnixStream,
    buf: Vec<u8>,
    open: bool,
    ready: bool,
    powerdown_pending: bool,
    shutdown: Option<Shutdown>,
    /// Host CPU for each vCPU, applied once QEMU reports its threads.
    pinning: Vec<u32>,
}

impl QmpSession {
    pub fn new(stream: UnixStream, pinning: Vec<u32>) -> Self {
        QmpSession {
            stream,
            buf: Vec::new(),
            open: true,
            ready: false,
            powerdown_pending: false,
            shutdown: None,
            pinning,
        }
    }

    fn send(&mut self, msg: &str) {
        // A failed write means QEMU is going away; its exit is handled then.
        let _ = self.stream.write_all(msg.as_bytes());
    }

    fn press_power_button(&mut self) {
        if self.ready {
            self.send(qmp::POWERDOWN);
        } else {
            self.powerdown_pending = true;
        }
    }

    /// Reads what is available; returns false at end of stream.
    fn read_available(&mut self) -> bool {
        let mut chunk = [0u8; 4096];
        let more = match self.stream.read(&mut chunk) {
            Ok(0) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => true,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => true,
            Err(_) => false,
        };
        while let Some(end) = self.buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.buf.drain(..=end).collect();
            match qmp::parse_line(&line) {
                Some(Message::Greeting) => self.send(qmp::CAPABILITIES),
                Some(Message::Return { id: None, .. }) if !self.ready => {
                    self.ready = true;
                    if self.powerdown_pending {
                        self.send(qmp::POWERDOWN);
                    }
                    if !self.pinning.is_empty() {
                        self.send(qmp::QUERY_CPUS);
                    }
                }
                Some(Message::Return {
                    id: Some(id),
                    value,
                }) if id == qmp::QUERY_CPUS_ID => {
                    pin_vcpus(&qmp::vcpu_threads(&value), &self.pinning)
                }
                Some(Message::Shutdown(s)) => self.shutdown = Some(s),
                _ => {}
            }
        }
        self.open &= more;
        self.open
    }

    /// After QEMU exited: read the rest (the SHUTDOWN event may still be
    /// in the socket) until end of stream.
    fn drain(&mut self) {
        if self.open && self.stream.set_nonblocking(false).is_ok() {
            let _ = self
                .stream
                .set_read_timeout(Some(std::time::Duration::from_secs(1)));
            while self.read_available() {}
        }
    }
}

/// Pins each vCPU thread to its host CPU.
fn pin_vcpus(threads: &[(u32, i32)], pinning: &[u32]) {
    for &(index, tid) in threads {
        let Some(&host_cpu) = pinning.get(index as usize) else {
            continue;
        };
        let mut set = nix::sched::CpuSet::new();
        if set.set(host_cpu as usize).is_ok() {
            if let Err(e) = nix::sched::sched_setaffinity(Pid::from_raw(tid), &set) {
                eprintln!("{LOG_PREFIX} cannot pin vCPU {index} to host CPU {host_cpu}: {e}");
            }
        }
    }
}

pub fn supervise(qemu: Pid, signals: &mut SignalFd, mut qmp: QmpSession) -> Result<i32> {
    loop {
        let (sig_ready, qmp_ready) = {
            let mut fds = vec![PollFd::new(signals.as_fd(), PollFlags::POLLIN)];
            if qmp.open {
                fds.push(PollFd::new(qmp.stream.as_fd(), PollFlags::POLLIN));
            }
            match poll(&mut fds, PollTimeout::NONE) {
                Err(nix::errno::Errno::EINTR) => continue,
                r => r?,
            };
            let ev = |i: usize| {
                fds.get(i)
                    .and_then(|f| f.revents())
                    .is_some_and(|r| !r.is_empty())
            };
            (ev(0), ev(1))
        };
        if qmp_ready {
            qmp.read_available();
        }
        if !sig_ready {
            continue;
        }
        while let Ok(Some(info)) = signals.read_signal() {
            if info.ssi_signo as i32 != libc::SIGCHLD {
                eprintln!("{LOG_PREFIX} asking the guest to power off (ACPI power button)");
                qmp.press_power_button();
                continue;
            }
            // PID 1 reaps every orphan; only QEMU's end matters.
            loop {
                match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                    Ok(WaitStatus::StillAlive) | Err(_) => break,
                    Ok(status) if status.pid() == Some(qemu) => {
                        qmp.drain();
                        let code = exit_status(status, qmp.shutdown.as_ref());
                        report(status, qmp.shutdown.as_ref(), code);
                        return Ok(code);
                    }
                    Ok(_) => {}
                }
            }
        }
    }
}

fn report(status: WaitStatus, shutdown: Option<&Shutdown>, code: i32) {
    match (status, shutdown) {
        (WaitStatus::Exited(_, 0), Some(s)) if s.guest => {}
        (WaitStatus::Exited(_, 0), Some(s)) => {
            eprintln!(
                "{LOG_PREFIX} the VM was stopped from the host ({}), exit status {code}",
                s.reason
            )
        }
        (WaitStatus::Exited(_, 0), None) => {
            eprintln!("{LOG_PREFIX} QEMU ended before the guest powered off, exit status {code}")
        }
        _ => eprintln!("{LOG_PREFIX} QEMU failed ({status:?}), exit status {code}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sd(guest: bool, reason: &str) -> Shutdown {
        Shutdown {
            guest,
            reason: reason.into(),
        }
    }

    #[test]
    fn exit_status_follows_the_guest() {
        let pid = Pid::from_raw(7);
        assert_eq!(
            exit_status(
                WaitStatus::Exited(pid, 0),
                Some(&sd(true, "guest-shutdown"))
            ),
            0
        );
        assert_eq!(
            exit_status(
                WaitStatus::Exited(pid, 0),
                Some(&sd(false, "host-qmp-quit"))
            ),
            EXIT_ABORTED
        );
        assert_eq!(exit_status(WaitStatus::Exited(pid, 0), None), EXIT_ABORTED);
        assert_eq!(exit_status(WaitStatus::Exited(pid, 1), None), 1);
        assert_eq!(
            exit_status(WaitStatus::Signaled(pid, Signal::SIGKILL, false), None),
            137
        );
    }
}
