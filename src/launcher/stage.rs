//! Lets crun load this build's handler without installing it: in a private
//! mount namespace of the launcher (inherited by crun and nothing else), a
//! tmpfs covers crun's handler directory and holds bind mounts of the
//! handlers that were there plus ours. When the directory does not exist on
//! the host, a read-only overlay on its nearest existing parent adds it,
//! so that nothing is created on the host.

use std::fs;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use nix::mount::{mount, MsFlags};
use nix::sched::{unshare, CloneFlags};

use crate::crun_install::HANDLER_FILE;

fn check(ret: libc::c_long, what: &str) -> Result<libc::c_long> {
    if ret < 0 {
        bail!("{what}: {}", std::io::Error::last_os_error());
    }
    Ok(ret)
}

/// A tmpfs that is not attached anywhere, holding `path` as empty
/// directories; returned as the fd of its root.
fn detached_tmpfs_with(path: &Path) -> Result<OwnedFd> {
    // SAFETY: fsopen/fsconfig/fsmount take NUL-terminated strings and ints;
    // each returned fd is checked and then owned exactly once.
    let mnt = unsafe {
        let fs = check(
            libc::syscall(
                libc::SYS_fsopen,
                c"tmpfs".as_ptr(),
                1, /* FSOPEN_CLOEXEC */
            ),
            "fsopen tmpfs",
        )?;
        let fs = OwnedFd::from_raw_fd(fs as i32);
        check(
            libc::syscall(
                libc::SYS_fsconfig,
                fs.as_raw_fd(),
                6, /* FSCONFIG_CMD_CREATE */
                0usize,
                0usize,
                0,
            ),
            "create tmpfs",
        )?;
        let m = check(
            libc::syscall(
                libc::SYS_fsmount,
                fs.as_raw_fd(),
                1, /* FSMOUNT_CLOEXEC */
                0,
            ),
            "fsmount tmpfs",
        )?;
        OwnedFd::from_raw_fd(m as i32)
    };
    let mut sub = PathBuf::new();
    for part in path.components() {
        sub.push(part);
        nix::sys::stat::mkdirat(
            Some(mnt.as_raw_fd()),
            &sub,
            nix::sys::stat::Mode::from_bits_truncate(0o755),
        )
        .with_context(|| format!("cannot create {} in a private tmpfs", sub.display()))?;
    }
    Ok(mnt)
}

/// Makes `dir` exist in this mount namespace, creating nothing on the host.
fn materialise(dir: &Path) -> Result<()> {
    let mut base = dir.to_path_buf();
    while !base.is_dir() {
        if !base.pop() {
            bail!("no existing parent of {}", dir.display());
        }
    }
    let missing = dir.strip_prefix(&base)?;
    let layer = detached_tmpfs_with(missing)?;
    let opts = format!(
        "lowerdir=/proc/self/fd/{}:{}",
        layer.as_raw_fd(),
        base.display()
    );
    mount(
        Some("overlay"),
        &base,
        Some("overlay"),
        MsFlags::MS_RDONLY,
        Some(opts.as_str()),
    )
    .with_context(|| {
        format!(
            "cannot add {} with an overlay on {}",
            dir.display(),
            base.display()
        )
    })?;
    Ok(())
}

fn bind_file(source: &Path, target: &Path) -> Result<()> {
    fs::File::create(target).with_context(|| format!("cannot create {}", target.display()))?;
    mount(
        Some(source),
        target,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .with_context(|| format!("cannot bind {} on {}", source.display(), target.display()))?;
    Ok(())
}

/// Enters a private mount namespace in which `dir` holds `handler` (named
/// `libcrun_qemu.so`) and the handlers the host already had there.
pub fn enter(dir: &Path, handler: &Path) -> Result<()> {
    unshare(CloneFlags::CLONE_NEWNS)
        .context("cannot create a private mount namespace (are you root?)")?;
    // Slave, not private: mounts the host makes later still reach crun, and
    // nothing made here reaches the host.
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_SLAVE,
        None::<&str>,
    )
    .context("cannot make the private mount namespace a slave")?;
    if !dir.is_dir() {
        materialise(dir)?;
    }
    // Keep a handle on the original directory to bind its entries back.
    let original = crate::fsutil::open_dir(dir)?;
    let existing: Vec<String> = fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.') && n != HANDLER_FILE)
        .collect();
    mount(
        Some("tmpfs"),
        dir,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=0755,size=1m"),
    )
    .with_context(|| format!("cannot mount a tmpfs on {}", dir.display()))?;
    for name in existing {
        let src = PathBuf::from(format!("/proc/self/fd/{}/{}", original.as_raw_fd(), name));
        bind_file(&src, &dir.join(&name))?;
    }
    bind_file(handler, &dir.join(HANDLER_FILE))
}
