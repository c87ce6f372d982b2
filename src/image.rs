//! Finds the one VM disk image under `/disk` in a container root filesystem
//! (the containerDisk layout) and checks it, reading only its header.
//! Runs in the crun parent (to refuse bad images before anything starts) and
//! again in the container's init, where the rootfs is `/`.

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use nix::fcntl::AtFlags;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use nix::sys::stat::{fstatat, FileStat, SFlag};

use crate::disk_head;
use crate::firmware::{self, Firmware};
use crate::fsutil::{open_beneath, open_dir};
use crate::image_format::{self, ImageFormat, HEADER_LEN};

/// Where the VM image lives inside the container image.
pub const DISK_DIR: &str = "disk";

const HOW_TO_PACKAGE: &str = "a VM container image holds exactly one disk image file under /disk \
     (package one with: package-vm-image.sh VM_IMAGE_FILE TAG)";

/// The VM image found in a root filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmImage {
    /// Path inside the container, e.g. `/disk/fedora.qcow2`.
    pub path_in_container: PathBuf,
    pub format: ImageFormat,
    pub size: u64,
    /// The disk size the guest sees, where the header tells it.
    pub virtual_size: Option<u64>,
    /// What the image's partition table asks for (see `firmware`).
    pub boot_firmware: Firmware,
    /// The file is in a container image's overlay: writing it in place
    /// would copy all of it up into the container's layer first.
    pub on_overlayfs: bool,
}

fn kind_of(st: &FileStat) -> &'static str {
    match SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) {
        SFlag::S_IFREG => "a regular file",
        SFlag::S_IFDIR => "a directory",
        SFlag::S_IFLNK => "a symbolic link",
        SFlag::S_IFBLK => "a block device",
        SFlag::S_IFCHR => "a character device",
        SFlag::S_IFIFO => "a FIFO",
        SFlag::S_IFSOCK => "a socket",
        _ => "an unknown kind of file",
    }
}

fn list(dir: &OwnedFd, what: &str) -> Result<Vec<String>> {
    let mut names = Vec::new();
    let stream = nix::dir::Dir::from_fd(nix::unistd::dup(dir.as_raw_fd())?)
        .with_context(|| format!("cannot list {what} in the container image"))?;
    for entry in stream {
        let entry = entry.with_context(|| format!("cannot list {what} in the container image"))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name != "." && name != ".." {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

fn stat_in(dir: &OwnedFd, name: &str) -> Result<FileStat> {
    fstatat(Some(dir.as_raw_fd()), name, AtFlags::AT_SYMLINK_NOFOLLOW)
        .with_context(|| format!("cannot inspect {name} in the container image"))
}

/// A root filesystem without /disk (`podman run --rootfs DIR`) may hold the
/// image at its top: the one regular, non-hidden file there.
fn top_level_image(root: &OwnedFd) -> Result<Option<String>> {
    // `root` is an O_PATH anchor, which cannot be listed: open it for reading.
    let listable = open_beneath(root.as_fd(), ".", libc::O_RDONLY | libc::O_DIRECTORY)
        .context("cannot list the container's root filesystem")?;
    let mut files = Vec::new();
    for name in list(&listable, "/")? {
        if !name.starts_with('.') && kind_of(&stat_in(root, &name)?) == "a regular file" {
            files.push(name);
        }
    }
    Ok(match files.as_slice() {
        [one] => Some(one.clone()),
        _ => None,
    })
}

/// Looks for the VM image under `rootfs/disk` (or, without /disk, the one
/// file at the top of `rootfs`) without following any symlink out of
/// `rootfs`, and probes it from its header.
pub fn find(rootfs: &Path) -> Result<VmImage> {
    let root = open_dir(rootfs).with_context(|| {
        format!(
            "cannot open the container's root filesystem {}",
            rootfs.display()
        )
    })?;
    let disk_dir = match open_beneath(root.as_fd(), DISK_DIR, libc::O_RDONLY | libc::O_DIRECTORY) {
        Ok(fd) => fd,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
            return match top_level_image(&root)? {
                Some(name) => inspect(&root, "/", &name),
                None => bail!("no /disk directory in the container image: {HOW_TO_PACKAGE}"),
            };
        }
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::ELOOP | libc::EXDEV | libc::ENOTDIR)
            ) =>
        {
            let st = stat_in(&root, DISK_DIR)?;
            bail!(
                "/disk in the container image is {}, not a directory: {HOW_TO_PACKAGE}",
                kind_of(&st)
            )
        }
        Err(e) => return Err(e).context("cannot open /disk in the container image"),
    };
    let name = match list(&disk_dir, "/disk")?.as_slice() {
        [] => bail!("no VM image found: /disk in the container image is empty; {HOW_TO_PACKAGE}"),
        [one] => one.clone(),
        many => bail!(
            "found {} entries under /disk in the container image ({}): {HOW_TO_PACKAGE}",
            many.len(),
            many.join(", ")
        ),
    };
    let kind = kind_of(&stat_in(&disk_dir, &name)?);
    if kind != "a regular file" {
        bail!(
            "/disk/{name} in the container image is {kind}, not a regular file: {HOW_TO_PACKAGE}"
        );
    }
    inspect(&disk_dir, "/disk/", &name)
}

/// Probes the regular file `dir/name`, shown to the user as `prefix+name`.
fn inspect(dir: &OwnedFd, prefix: &str, name: &str) -> Result<VmImage> {
    let shown = format!("{prefix}{name}");
    let fd = open_beneath(dir.as_fd(), name, libc::O_RDONLY)
        .with_context(|| format!("cannot open {shown}"))?;
    let mut file = File::from(fd);
    let size = file.metadata()?.len();
    let mut header = Vec::with_capacity(HEADER_LEN);
    (&mut file)
        .take(HEADER_LEN as u64)
        .read_to_end(&mut header)
        .with_context(|| format!("cannot read {shown}"))?;
    let format = image_format::probe(&header, size)
        .map_err(|why| anyhow::anyhow!("the VM image {shown} {why}"))?;
    let boot_firmware = disk_head::read(&file, format, firmware::HEAD_LEN)
        .map_or(Firmware::Bios, |head| firmware::detect(&head));
    let on_overlayfs = nix::sys::statfs::fstatfs(&file)
        .map(|fs| fs.filesystem_type() == nix::sys::statfs::OVERLAYFS_SUPER_MAGIC)
        .unwrap_or(false);
    Ok(VmImage {
        path_in_container: PathBuf::from(shown),
        virtual_size: crate::overlay::virtual_size(format, size, &header),
        format,
        size,
        boot_firmware,
        on_overlayfs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::symlink;

    fn rootfs() -> tempfile::TempDir {
        tempfile::tempdir().unwrap()
    }

    fn err(root: &Path) -> String {
        format!("{:#}", find(root).unwrap_err())
    }

    #[test]
    fn finds_the_single_image() {
        let r = rootfs();
        fs::create_dir(r.path().join("disk")).unwrap();
        let mut mbr = vec![0u8; 1024];
        mbr[510] = 0x55;
        mbr[511] = 0xaa;
        fs::write(r.path().join("disk/vm.img"), &mbr).unwrap();
        let img = find(r.path()).unwrap();
        assert_eq!(img.path_in_container, Path::new("/disk/vm.img"));
        assert_eq!(img.format, ImageFormat::Raw);
        assert_eq!(img.size, 1024);
    }

    #[test]
    fn takes_the_one_file_at_the_top_without_disk() {
        let r = rootfs();
        fs::create_dir(r.path().join("etc")).unwrap();
        fs::write(r.path().join("vm.qcow2.raw"), [0u8; 512]).unwrap();
        let img = find(r.path()).unwrap();
        assert_eq!(img.path_in_container, Path::new("/vm.qcow2.raw"));
        fs::write(r.path().join("other.img"), [0u8; 512]).unwrap();
        assert!(err(r.path()).contains("no /disk directory"));
    }

    #[test]
    fn refuses_missing_and_empty_disk_dir() {
        let r = rootfs();
        assert!(
            err(r.path()).contains("no /disk directory"),
            "{}",
            err(r.path())
        );
        fs::create_dir(r.path().join("disk")).unwrap();
        let e = err(r.path());
        assert!(
            e.contains("is empty") && e.contains("package-vm-image.sh"),
            "{e}"
        );
    }

    #[test]
    fn refuses_two_images() {
        let r = rootfs();
        fs::create_dir(r.path().join("disk")).unwrap();
        fs::write(r.path().join("disk/a.img"), b"x").unwrap();
        fs::write(r.path().join("disk/b.img"), b"y").unwrap();
        let e = err(r.path());
        assert!(
            e.contains("found 2 entries") && e.contains("a.img, b.img"),
            "{e}"
        );
    }

    #[test]
    fn refuses_directory_and_symlinks() {
        let r = rootfs();
        fs::create_dir_all(r.path().join("disk/sub")).unwrap();
        assert!(err(r.path()).contains("is a directory"));
        fs::remove_dir(r.path().join("disk/sub")).unwrap();

        symlink("/etc/passwd", r.path().join("disk/escape.img")).unwrap();
        assert!(
            err(r.path()).contains("is a symbolic link"),
            "{}",
            err(r.path())
        );
        fs::remove_file(r.path().join("disk/escape.img")).unwrap();
        fs::remove_dir(r.path().join("disk")).unwrap();

        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("host.img"), b"secret").unwrap();
        symlink(outside.path(), r.path().join("disk")).unwrap();
        let e = err(r.path());
        assert!(
            e.contains("/disk in the container image is a symbolic link, not a directory"),
            "{e}"
        );
    }

    #[test]
    fn refuses_bad_content_with_its_type() {
        let r = rootfs();
        fs::create_dir(r.path().join("disk")).unwrap();
        fs::write(r.path().join("disk/vm.img.xz"), b"\xfd7zXZ\0payload").unwrap();
        let e = err(r.path());
        assert!(e.contains("xz-compressed") && e.contains("xz -d"), "{e}");
        fs::remove_file(r.path().join("disk/vm.img.xz")).unwrap();
        fs::write(r.path().join("disk/empty.img"), b"").unwrap();
        assert!(err(r.path()).contains("is empty"));
    }
}
