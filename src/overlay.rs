//! Creates the qcow2 overlay that takes the guest's writes, without a helper
//! process: a v3 header naming the backing image, one refcount table and
//! block, and an empty L1 table. It writes four clusters whatever the size
//! of the image, and never reads the image. Rendering is pure.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::image_format::ImageFormat;

const CLUSTER_BITS: u32 = 16;
const CLUSTER: u64 = 1 << CLUSTER_BITS;
/// Header extension naming the backing file's format.
const EXT_BACKING_FORMAT: u32 = 0xe279_2aca;
const HEADER_LEN: usize = 104;

/// The guest-visible size of an image, for the formats whose size this
/// module can read from what `image` already read (`header`).
pub fn virtual_size(format: ImageFormat, file_size: u64, header: &[u8]) -> Option<u64> {
    match format {
        ImageFormat::Raw => Some(file_size),
        ImageFormat::Qcow2 => Some(u64::from_be_bytes(header.get(24..32)?.try_into().ok()?)),
        _ => None,
    }
}

fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

fn put64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_be_bytes());
}

/// The whole overlay file for a `size`-byte disk backed by `backing`.
pub fn render(size: u64, backing: &str, backing_format: ImageFormat) -> Vec<u8> {
    let l2_span = CLUSTER * (CLUSTER / 8);
    let l1_entries = size.div_ceil(l2_span).max(1);
    let l1_clusters = (l1_entries * 8).div_ceil(CLUSTER);
    let (refcount_table, refcount_block, l1_table) = (CLUSTER, 2 * CLUSTER, 3 * CLUSTER);
    let clusters = 3 + l1_clusters;
    let mut file = vec![0u8; (clusters * CLUSTER) as usize];

    let h = &mut file[..];
    h[0..4].copy_from_slice(b"QFI\xfb");
    put32(h, 4, 3);
    put32(h, 20, CLUSTER_BITS);
    put64(h, 24, size);
    put32(h, 36, l1_entries as u32);
    put64(h, 40, l1_table);
    put64(h, 48, refcount_table);
    put32(h, 56, 1);
    put32(h, 96, 4); // 16-bit refcounts
    put32(h, 100, HEADER_LEN as u32);
    // Extensions: the backing format, then the end marker; the backing
    // file name follows them.
    let fmt = backing_format.qemu_driver().as_bytes();
    let mut at = HEADER_LEN;
    put32(h, at, EXT_BACKING_FORMAT);
    put32(h, at + 4, fmt.len() as u32);
    h[at + 8..at + 8 + fmt.len()].copy_from_slice(fmt);
    at += 8 + fmt.len().div_ceil(8) * 8;
    at += 8; // end of extensions: type 0, length 0
    let name = backing.as_bytes();
    put64(h, 8, at as u64);
    put32(h, 16, name.len() as u32);
    h[at..at + name.len()].copy_from_slice(name);

    put64(&mut file, refcount_table as usize, refcount_block);
    for cluster in 0..clusters as usize {
        file[refcount_block as usize + 2 * cluster + 1] = 1;
    }
    file
}

/// The longest backing file name the header has room for.
pub const MAX_BACKING_NAME: usize = CLUSTER as usize - HEADER_LEN - 64;

/// Writes the overlay at `path`, which must not exist yet.
pub fn create(
    path: &Path,
    size: u64,
    backing: &str,
    backing_format: ImageFormat,
) -> std::io::Result<()> {
    if backing.len() > MAX_BACKING_NAME {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "backing file name too long",
        ));
    }
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(&render(size, backing, backing_format))?;
    f.sync_data()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn qemu_img(args: &[&str]) -> String {
        let out = Command::new("qemu-img")
            .args(args)
            .output()
            .expect("qemu-img is needed for this test");
        assert!(
            out.status.success(),
            "qemu-img {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    #[test]
    fn qemu_accepts_the_overlay_and_its_writes() {
        let d = tempfile::tempdir().unwrap();
        let base = d.path().join("base.qcow2");
        qemu_img(&["create", "-q", "-f", "qcow2", base.to_str().unwrap(), "20G"]);
        let overlay = d.path().join("overlay.qcow2");
        create(
            &overlay,
            20 << 30,
            base.to_str().unwrap(),
            ImageFormat::Qcow2,
        )
        .unwrap();
        assert_eq!(std::fs::metadata(&overlay).unwrap().len(), 4 * CLUSTER);

        let info: serde_json::Value = serde_json::from_str(&qemu_img(&[
            "info",
            "--output=json",
            overlay.to_str().unwrap(),
        ]))
        .unwrap();
        assert_eq!(info["format"], "qcow2");
        assert_eq!(info["virtual-size"], 20u64 << 30);
        assert_eq!(info["backing-filename"], base.to_str().unwrap());
        assert_eq!(info["backing-filename-format"], "qcow2");
        qemu_img(&["check", "-q", overlay.to_str().unwrap()]);

        // Writes across L2 tables, then a consistency check of refcounts.
        let io = Command::new("qemu-io")
            .args([
                "-c",
                "write -P 0xab 0 1M",
                "-c",
                "write -P 0xcd 10G 64k",
                "-c",
                "read -P 0xab 0 1M",
            ])
            .arg(&overlay)
            .output()
            .unwrap();
        assert!(
            io.status.success(),
            "{}",
            String::from_utf8_lossy(&io.stderr)
        );
        assert!(!String::from_utf8_lossy(&io.stdout).contains("Pattern verification failed"));
        qemu_img(&["check", "-q", overlay.to_str().unwrap()]);
        assert!(
            create(&overlay, 1 << 20, "x", ImageFormat::Raw).is_err(),
            "overwrote an existing file"
        );
    }

    #[test]
    fn sizes() {
        assert_eq!(virtual_size(ImageFormat::Raw, 4096, &[]), Some(4096));
        let mut h = vec![0u8; 64];
        h[24..32].copy_from_slice(&(5u64 << 30).to_be_bytes());
        assert_eq!(virtual_size(ImageFormat::Qcow2, 1, &h), Some(5 << 30));
        assert_eq!(virtual_size(ImageFormat::Vmdk, 1, &h), None);
        // A tiny disk still gets one L1 entry; a huge one more L1 clusters.
        assert_eq!(render(512, "b", ImageFormat::Raw).len() as u64, 4 * CLUSTER);
        assert_eq!(
            render(8 << 40, "b", ImageFormat::Raw).len() as u64,
            (3 + 2) * CLUSTER
        );
    }
}
