//! Chooses the accelerator. `/dev/kvm` existing proves nothing (a nested or
//! paravirtual KVM may fail on ordinary guests), so `auto` runs a tiny guest
//! first: a few real-mode instructions that must reach an I/O exit and HLT.
//! Runs in the container's init (and in the launcher for `--version`).

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, ForkResult};

use crate::annotations::AccelRequest;
use crate::vm::Accel;

pub const KVM_DEVICE: &str = "/dev/kvm";
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Exit codes of the probe child, one per way KVM can fail.
const PROBE_OK: i32 = 0;
const PROBE_OPEN: i32 = 10;
const PROBE_SETUP: i32 = 11;
const PROBE_WRONG_EXIT: i32 = 12;

/// mov al, 0x42; out 0x10, al; hlt
const PROBE_CODE: [u8; 5] = [0xb0, 0x42, 0xe6, 0x10, 0xf4];
const PROBE_ADDR: u64 = 0x1000;

fn run_probe_guest() -> i32 {
    use kvm_ioctls::{Kvm, VcpuExit};
    let Ok(kvm) = Kvm::new() else {
        return PROBE_OPEN;
    };
    let setup = || -> Result<kvm_ioctls::VcpuFd, kvm_ioctls::Error> {
        let vm = kvm.create_vm()?;
        let len = 0x1000usize;
        // SAFETY: an anonymous private mapping with no address hint; it is
        // never unmapped, because the probe process exits right after.
        let mem = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if mem == libc::MAP_FAILED {
            return Err(kvm_ioctls::Error::last());
        }
        // SAFETY: `mem` is a fresh writable mapping of `len` >= 5 bytes.
        unsafe {
            std::ptr::copy_nonoverlapping(PROBE_CODE.as_ptr(), mem as *mut u8, PROBE_CODE.len())
        };
        let region = kvm_bindings::kvm_userspace_memory_region {
            slot: 0,
            flags: 0,
            guest_phys_addr: PROBE_ADDR,
            memory_size: len as u64,
            userspace_addr: mem as u64,
        };
        // SAFETY: the region describes the mapping above, which stays valid
        // for the life of the VM (the process).
        unsafe { vm.set_user_memory_region(region)? };
        let vcpu = vm.create_vcpu(0)?;
        let mut sregs = vcpu.get_sregs()?;
        sregs.cs.base = 0;
        sregs.cs.selector = 0;
        vcpu.set_sregs(&sregs)?;
        let regs = kvm_bindings::kvm_regs {
            rip: PROBE_ADDR,
            rflags: 2,
            ..Default::default()
        };
        vcpu.set_regs(&regs)?;
        // The VM fd must outlive the vCPU: leak it, the process exits soon.
        std::mem::forget(vm);
        Ok(vcpu)
    };
    let Ok(mut vcpu) = setup() else {
        return PROBE_SETUP;
    };
    let mut saw_io = false;
    for _ in 0..4 {
        match vcpu.run() {
            Ok(VcpuExit::IoOut(0x10, data)) if data == [0x42] => saw_io = true,
            Ok(VcpuExit::Hlt) if saw_io => return PROBE_OK,
            _ => return PROBE_WRONG_EXIT,
        }
    }
    PROBE_WRONG_EXIT
}

/// Says whether KVM can run an ordinary guest here, and why not.
pub fn kvm_usable() -> std::result::Result<(), String> {
    if !Path::new(KVM_DEVICE).exists() {
        return Err(format!("{KVM_DEVICE} does not exist"));
    }
    // Opening it first tells a missing device-cgroup permission apart.
    if let Err(e) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(KVM_DEVICE)
    {
        return Err(format!("{KVM_DEVICE} cannot be opened ({e})"));
    }
    if Path::new("/sys/module/kvm_pvm").exists() {
        return Err("the host's KVM is kvm-pvm, which runs only PVM-enabled guest kernels".into());
    }
    // SAFETY: the callers (the container's init, the launcher) are single
    // threaded, so no lock can be held across the fork and the child may
    // allocate; it runs the probe and _exits, never returning to the caller.
    match unsafe { fork() } {
        Err(e) => Err(format!("cannot fork the KVM probe: {e}")),
        Ok(ForkResult::Child) => {
            let code = run_probe_guest();
            // SAFETY: _exit ends the child without running the parent's
            // atexit handlers or destructors twice.
            unsafe { libc::_exit(code) }
        }
        Ok(ForkResult::Parent { child }) => {
            let started = Instant::now();
            loop {
                match waitpid(child, Some(WaitPidFlag::WNOHANG)) {
                    Ok(WaitStatus::StillAlive) if started.elapsed() < PROBE_TIMEOUT => {
                        std::thread::sleep(Duration::from_millis(2))
                    }
                    Ok(WaitStatus::StillAlive) => {
                        let _ = kill(child, Signal::SIGKILL);
                        let _ = waitpid(child, None);
                        return Err(format!(
                            "a test guest did not finish within {PROBE_TIMEOUT:?} under KVM"
                        ));
                    }
                    Ok(WaitStatus::Exited(_, PROBE_OK)) => return Ok(()),
                    Ok(WaitStatus::Exited(_, PROBE_OPEN)) => {
                        return Err(format!("{KVM_DEVICE} cannot be opened"))
                    }
                    Ok(WaitStatus::Exited(_, PROBE_SETUP)) => {
                        return Err("KVM refused to create a test VM".into())
                    }
                    Ok(_) => return Err("a test guest did not run correctly under KVM".into()),
                    Err(e) => return Err(format!("waiting for the KVM probe: {e}")),
                }
            }
        }
    }
}

/// Resolves the user's request to an accelerator, with a one-line note to
/// print when `auto` had to fall back to emulation.
pub fn choose(request: AccelRequest) -> Result<(Accel, Option<String>)> {
    choose_with(request, kvm_usable)
}

fn choose_with(
    request: AccelRequest,
    probe: impl FnOnce() -> std::result::Result<(), String>,
) -> Result<(Accel, Option<String>)> {
    match request {
        AccelRequest::Tcg => Ok((Accel::Tcg, None)),
        AccelRequest::Kvm => match probe() {
            Ok(()) => Ok((Accel::Kvm, None)),
            Err(why) => bail!(
                "qemu.accel=kvm was requested but KVM is not usable: {why}; \
                 use qemu.accel=tcg (or auto) to run the VM under emulation"
            ),
        },
        AccelRequest::Auto => match probe() {
            Ok(()) => Ok((Accel::Kvm, None)),
            Err(why) => Ok((
                Accel::Tcg,
                Some(format!(
                    "KVM is not usable ({why}): using TCG emulation, which is slower"
                )),
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcg_never_probes() {
        let (a, note) = choose_with(AccelRequest::Tcg, || panic!("probed")).unwrap();
        assert_eq!(a, Accel::Tcg);
        assert!(note.is_none());
    }

    #[test]
    fn auto_falls_back_with_one_line() {
        let (a, note) = choose_with(AccelRequest::Auto, || Err("broken".into())).unwrap();
        assert_eq!(a, Accel::Tcg);
        let note = note.unwrap();
        assert!(note.contains("broken") && note.contains("TCG") && !note.contains('\n'));
        let (a, _) = choose_with(AccelRequest::Auto, || Ok(())).unwrap();
        assert_eq!(a, Accel::Kvm);
    }

    #[test]
    fn explicit_kvm_fails_loudly() {
        let err = choose_with(AccelRequest::Kvm, || Err("no device".into())).unwrap_err();
        assert!(err.to_string().contains("qemu.accel=tcg"));
    }
}
