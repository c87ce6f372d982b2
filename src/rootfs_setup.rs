//! Makes the host's QEMU installation reachable inside the container's root
//! filesystem and creates the runtime's state directory there. Runs in the
//! container's init, in its mount namespace, before pivot_root: `rootfs` is
//! the host path of the (untrusted) root filesystem, so every path in it is
//! opened with `fsutil::open_beneath` and mounts are made on those fds.

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use anyhow::{bail, Context, Result};
use nix::mount::{mount, MsFlags};
use nix::sys::stat::Mode;

use crate::fsutil::{open_beneath, open_dir, proc_fd_path};

/// The runtime's directory in the container: the overlay, the QMP socket.
pub const STATE_DIR: &str = ".crun-qemu";

const IMAGE_ONLY: &str = "a VM container image should hold only /disk";

fn ensure_dir(root: &OwnedFd, name: &str, mode: u32) -> Result<OwnedFd> {
    match nix::sys::stat::mkdirat(
        Some(std::os::fd::AsRawFd::as_raw_fd(root)),
        name,
        Mode::from_bits_truncate(mode),
    ) {
        Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
        Err(e) => return Err(e).with_context(|| format!("cannot create /{name} in the container")),
    }
    open_beneath(root.as_fd(), name, libc::O_PATH | libc::O_DIRECTORY).map_err(|e| {
        if matches!(e.raw_os_error(), Some(libc::ELOOP) | Some(libc::ENOTDIR)) {
            anyhow::anyhow!("/{name} in the container image is not a directory: {IMAGE_ONLY}")
        } else {
            anyhow::Error::new(e).context(format!("cannot open /{name} in the container"))
        }
    })
}

/// Binds the host's directory `source` read-only, without setuid or device
/// files, on `root/name`.
fn bind_read_only(source: &str, root: &OwnedFd, name: &str) -> Result<()> {
    let target = ensure_dir(root, name, 0o755)?;
    mount(
        Some(source),
        proc_fd_path(&target).as_str(),
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .with_context(|| format!("cannot bind the host's {source} into the container"))?;
    // That fd still names the directory under the new mount: open the
    // mount's root to remount it.
    let mounted = open_beneath(root.as_fd(), name, libc::O_PATH | libc::O_DIRECTORY)?;
    let flags = MsFlags::MS_BIND
        | MsFlags::MS_REMOUNT
        | MsFlags::MS_RDONLY
        | MsFlags::MS_NOSUID
        | MsFlags::MS_NODEV;
    mount(
        None::<&str>,
        proc_fd_path(&mounted).as_str(),
        None::<&str>,
        flags,
        None::<&str>,
    )
    .with_context(|| format!("cannot make the host's {source} read-only in the container"))?;
    Ok(())
}

/// Mirrors one of the host's merged-/usr top-level symlinks (`/lib` ->
/// `usr/lib`) so that QEMU's dynamic loader and libraries are found.
fn ensure_usr_symlink(root: &OwnedFd, name: &str) -> Result<()> {
    let Ok(target) = std::fs::read_link(Path::new("/").join(name)) else {
        return Ok(()); // not a symlink on this host: nothing to mirror
    };
    let rawfd = std::os::fd::AsRawFd::as_raw_fd(root);
    match nix::unistd::symlinkat(&target, Some(rawfd), name) {
        Ok(()) => Ok(()),
        Err(nix::errno::Errno::EEXIST) => {
            let existing = nix::fcntl::readlinkat(Some(rawfd), name).ok();
            if existing.as_deref() == Some(target.as_os_str()) {
                Ok(())
            } else {
                bail!("the container image has its own /{name}, where the host's QEMU needs /{name} -> {}: {IMAGE_ONLY}", target.display())
            }
        }
        Err(e) => Err(e).with_context(|| format!("cannot create /{name} in the container")),
    }
}

/// The top-level names the runner needs: directories, and the host's
/// merged-/usr symlinks.
const DIRS: [&str; 2] = ["usr", STATE_DIR];
const LINKS: [&str; 4] = ["bin", "sbin", "lib", "lib64"];

/// Checks, before the container exists (in the crun parent), that `prepare`
/// will find room for what it adds: a rootfs whose own /usr or /lib would
/// be in the way is refused with a message rather than half set up.
pub fn check(rootfs: &Path) -> Result<()> {
    let root = open_dir(rootfs)?;
    let rawfd = std::os::fd::AsRawFd::as_raw_fd(&root);
    let stat = |name: &str| {
        nix::sys::stat::fstatat(Some(rawfd), name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW).ok()
    };
    let is = |st: &nix::sys::stat::FileStat, kind: libc::mode_t| st.st_mode & libc::S_IFMT == kind;
    for name in DIRS {
        if let Some(st) = stat(name) {
            if !is(&st, libc::S_IFDIR) {
                bail!("/{name} in the container image is not a directory: {IMAGE_ONLY}");
            }
        }
    }
    for name in LINKS {
        let Ok(target) = std::fs::read_link(Path::new("/").join(name)) else {
            continue;
        };
        if stat(name).is_some()
            && nix::fcntl::readlinkat(Some(rawfd), name).ok().as_deref() != Some(target.as_os_str())
        {
            bail!("the container image has its own /{name}, where the host's QEMU needs /{name} -> {}: {IMAGE_ONLY}", target.display());
        }
    }
    Ok(())
}

/// Prepares `rootfs` for the runner. With `state_in_tmpfs` the state
/// directory is a tmpfs: the guest's writes then use the container's memory.
pub fn prepare(rootfs: &Path, state_in_tmpfs: bool) -> Result<()> {
    let root = open_dir(rootfs).with_context(|| {
        format!(
            "cannot open the container's root filesystem {}",
            rootfs.display()
        )
    })?;
    bind_read_only("/usr", &root, "usr")?;
    for name in LINKS {
        ensure_usr_symlink(&root, name)?;
    }
    let state = ensure_dir(&root, STATE_DIR, 0o700)?;
    if state_in_tmpfs {
        let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
        mount(
            Some("tmpfs"),
            proc_fd_path(&state).as_str(),
            Some("tmpfs"),
            flags,
            Some("mode=0700"),
        )
        .context("cannot mount a tmpfs for the VM's state")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn check_refuses_what_would_be_in_the_way() {
        let r = tempfile::tempdir().unwrap();
        check(r.path()).unwrap();
        std::fs::create_dir(r.path().join("usr")).unwrap();
        check(r.path()).unwrap();
        std::fs::remove_dir(r.path().join("usr")).unwrap();
        symlink("/etc", r.path().join("usr")).unwrap();
        let e = check(r.path()).unwrap_err().to_string();
        assert!(
            e.contains("/usr in the container image is not a directory"),
            "{e}"
        );
        std::fs::remove_file(r.path().join("usr")).unwrap();
        if let Ok(target) = std::fs::read_link("/lib") {
            symlink(&target, r.path().join("lib")).unwrap();
            check(r.path()).unwrap();
            std::fs::remove_file(r.path().join("lib")).unwrap();
            std::fs::create_dir(r.path().join("lib")).unwrap();
            let e = check(r.path()).unwrap_err().to_string();
            assert!(e.contains("has its own /lib"), "{e}");
        }
    }
}
