//! The VM runner: what the container's init becomes instead of exec'ing
//! `process.args`. Runs as PID 1 of the container, after pivot_root, with the
//! container's privileges. It builds the VM from the plan, creates the
//! overlay, and starts QEMU as its child; `supervisor` then runs it to the
//! end.

use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::unistd::{fork, ForkResult, Pid};

use crate::firmware;
use crate::overlay;
use crate::qemu_cmdline;
use crate::resources::TCG_TB_CACHE_MIB;
use crate::rootfs_setup::STATE_DIR;
use crate::spec::{Plan, OVMF_CODE, OVMF_VARS};
use crate::supervisor::{self, QmpSession, STOP_SIGNALS};
use crate::vm::{Accel, BootDisk, Firmware, VmConfig};
use crate::LOG_PREFIX;

/// Descriptor number of the QMP listening socket in QEMU.
const QMP_FD: i32 = 3;

/// Whether a state file from an earlier start of this container is there to
/// be used again: `podman start` after `podman stop` resumes with the
/// guest's disk writes and UEFI variables, as a container keeps its
/// writable layer until `podman rm`. Anything but a regular file is removed.
fn kept_state_file(path: &Path) -> Result<bool> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_file() => Ok(true),
        Ok(_) => {
            std::fs::remove_file(path)
                .with_context(|| format!("cannot replace {}", path.display()))?;
            Ok(false)
        }
        Err(_) => Ok(false),
    }
}

/// Creates the overlay; neither way reads more of the image than its
/// header, so this costs the same for any image size.
fn create_overlay(disk: &BootDisk, overlay: &Path, virtual_size: Option<u64>) -> Result<()> {
    let backing = disk.image.to_string_lossy();
    if let Some(size) = virtual_size.filter(|_| backing.len() <= overlay::MAX_BACKING_NAME) {
        return overlay::create(overlay, size, &backing, disk.format)
            .with_context(|| format!("cannot create the VM's overlay {}", overlay.display()));
    }
    // Formats whose size only QEMU's drivers know: ask qemu-img.
    let out = Command::new("/usr/bin/qemu-img")
        .args([
            "create",
            "-q",
            "-f",
            "qcow2",
            "-F",
            disk.format.qemu_driver(),
            "-b",
        ])
        .arg(&disk.image)
        .arg(overlay)
        .output()
        .context("cannot run qemu-img to create the VM's overlay")?;
    if !out.status.success() {
        bail!(
            "cannot create the overlay over {}: {}",
            disk.image.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

fn spawn_qemu(args: &[String], qmp_listener: &OwnedFd) -> Result<Pid> {
    let cargs: Vec<CString> = args
        .iter()
        .map(|a| CString::new(a.as_str()))
        .collect::<Result<_, _>>()?;
    let mut env: Vec<CString> = std::env::vars_os()
        .filter(|(k, _)| k != "TMPDIR")
        .filter_map(|(k, v)| {
            let mut kv = k.into_encoded_bytes();
            kv.push(b'=');
            kv.extend(v.into_encoded_bytes());
            CString::new(kv).ok()
        })
        .collect();
    env.push(CString::new(format!("TMPDIR=/{STATE_DIR}"))?);
    let listener = qmp_listener.as_raw_fd();
    let nul_terminated = |v: &[CString]| -> Vec<*const libc::c_char> {
        v.iter()
            .map(|a| a.as_ptr())
            .chain(std::iter::once(std::ptr::null()))
            .collect()
    };
    let (argv, envp) = (nul_terminated(&cargs), nul_terminated(&env));
    // SAFETY: the runner is single threaded; between fork and execve the
    // child only makes async-signal-safe syscalls on data prepared above
    // (nothing is allocated after the fork).
    match unsafe { fork() }.context("cannot fork QEMU")? {
        ForkResult::Parent { child } => Ok(child),
        ForkResult::Child => {
            // SAFETY: plain syscalls on integers and pointers that live until
            // execve or _exit.
            unsafe {
                let empty: libc::sigset_t = std::mem::zeroed();
                libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                if listener == QMP_FD {
                    libc::fcntl(QMP_FD, libc::F_SETFD, 0);
                } else {
                    libc::dup2(listener, QMP_FD);
                }
                libc::syscall(libc::SYS_close_range, QMP_FD + 1, u32::MAX, 0);
                libc::execve(cargs[0].as_ptr(), argv.as_ptr(), envp.as_ptr());
                let msg = b"crun-qemu: cannot execute /usr/bin/qemu-system-x86_64\n";
                libc::write(2, msg.as_ptr().cast(), msg.len());
                libc::_exit(127);
            }
        }
    }
}

/// The VM for `plan` (whose image the crun parent found and checked; the
/// init inherits it, so it is not looked up again), its state in `state`.
/// Pure.
pub fn build_vm(plan: &Plan, accel: Accel, state: &Path) -> VmConfig {
    let image = &plan.image;
    let firmware = match plan.firmware {
        firmware::Firmware::Bios => Firmware::Bios,
        firmware::Firmware::Uefi => Firmware::Uefi {
            code: OVMF_CODE.into(),
            vars: state.join("OVMF_VARS.fd"),
        },
    };
    VmConfig {
        accel,
        tb_cache_mib: TCG_TB_CACHE_MIB,
        vcpus: plan.sizing.vcpus,
        memory_mib: plan.sizing.memory_mib,
        firmware,
        boot_disk: BootDisk {
            image: image.path_in_container.clone(),
            format: image.format,
            overlay: (!plan.settings.persistent).then(|| state.join("overlay.qcow2")),
        },
        qmp_fd: QMP_FD,
    }
}

/// Builds the VM for the container's image and runs it to the end. Returns
/// the container's exit status.
pub fn run(plan: &Plan) -> Result<i32> {
    let (accel, note) = crate::accel::choose(plan.settings.accel)?;
    if let Some(note) = note {
        eprintln!("{LOG_PREFIX} {note}");
    }
    let state = PathBuf::from("/").join(STATE_DIR);
    let vm = build_vm(plan, accel, &state);
    if let Some(overlay) = &vm.boot_disk.overlay {
        if !kept_state_file(overlay)? {
            create_overlay(&vm.boot_disk, overlay, plan.image.virtual_size)?;
        }
    }
    if let Firmware::Uefi { vars, .. } = &vm.firmware {
        if !kept_state_file(vars)? {
            std::fs::copy(OVMF_VARS, vars)
                .with_context(|| format!("cannot copy {OVMF_VARS} for the VM"))?;
        }
    }

    let sock_path = state.join("qmp.sock");
    let _ = std::fs::remove_file(&sock_path);
    let listener = UnixListener::bind(&sock_path).context("cannot create the QMP socket")?;
    // Connecting before QEMU starts cannot race: the kernel queues us on the
    // listening socket until QEMU accepts.
    let qmp_stream = UnixStream::connect(&sock_path).context("cannot connect to the QMP socket")?;
    qmp_stream.set_nonblocking(true)?;

    let mut mask = SigSet::empty();
    for s in STOP_SIGNALS {
        mask.add(s);
    }
    mask.add(Signal::SIGCHLD);
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&mask), None)?;
    let mut signals = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC)?;

    let listener_fd: OwnedFd = listener.into();
    let qemu = spawn_qemu(&qemu_cmdline::render(&vm), &listener_fd)?;
    drop(listener_fd);

    let qmp = QmpSession::new(qmp_stream, plan.sizing.pinning.clone());
    supervisor::supervise(qemu, &mut signals, qmp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::annotations::Annotations;
    use crate::image::VmImage;
    use crate::image_format::ImageFormat;
    use crate::resources::Sizing;

    fn plan(persistent: bool, fw: firmware::Firmware) -> Plan {
        let image = VmImage {
            path_in_container: "/disk/vm.img".into(),
            format: ImageFormat::Raw,
            size: 1 << 30,
            virtual_size: Some(1 << 30),
            boot_firmware: fw,
            on_overlayfs: true,
        };
        Plan {
            settings: Annotations {
                persistent,
                ..Default::default()
            },
            image,
            sizing: Sizing {
                vcpus: 3,
                pinning: vec![],
                memory_mib: 700,
            },
            firmware: fw,
            state_in_tmpfs: false,
        }
    }

    #[test]
    fn the_vm_follows_the_plan() {
        let p = plan(false, firmware::Firmware::Bios);
        let vm = build_vm(&p, Accel::Tcg, Path::new("/.crun-qemu"));
        assert_eq!(vm.boot_disk.image, Path::new("/disk/vm.img"));
        assert_eq!((vm.vcpus, vm.memory_mib), (3, 700));
        assert_eq!(vm.firmware, Firmware::Bios);
        assert_eq!(
            vm.boot_disk.overlay.as_deref(),
            Some(Path::new("/.crun-qemu/overlay.qcow2"))
        );

        let p = plan(true, firmware::Firmware::Uefi);
        let vm = build_vm(&p, Accel::Kvm, Path::new("/s"));
        assert_eq!(vm.boot_disk.overlay, None);
        assert_eq!(
            vm.firmware,
            Firmware::Uefi {
                code: OVMF_CODE.into(),
                vars: "/s/OVMF_VARS.fd".into()
            }
        );
    }
}
