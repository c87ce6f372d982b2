//! Reads the first bytes of the disk the guest sees, from a raw or qcow2
//! image, touching only the header, two table entries and one data cluster.

use std::fs::File;
use std::os::unix::fs::FileExt;

use crate::image_format::ImageFormat;

const OFFSET_MASK: u64 = 0x00ff_ffff_ffff_fe00;
const COMPRESSED: u64 = 1 << 62;
const ZERO_FLAG: u64 = 1;
const EXTENDED_L2: u64 = 1 << 4;

fn be_u64(file: &File, at: u64) -> Option<u64> {
    let mut b = [0u8; 8];
    file.read_exact_at(&mut b, at).ok()?;
    Some(u64::from_be_bytes(b))
}

fn be_u32(file: &File, at: u64) -> Option<u32> {
    let mut b = [0u8; 4];
    file.read_exact_at(&mut b, at).ok()?;
    Some(u32::from_be_bytes(b))
}

/// Guest bytes `[0, len)` of a qcow2 image, following its L1 and L2 tables;
/// None where that would need more than this (compressed clusters,
/// extended L2 entries).
fn qcow2_head(file: &File, len: usize) -> Option<Vec<u8>> {
    let cluster_bits = be_u32(file, 20)?;
    if !(9..=21).contains(&cluster_bits) {
        return None;
    }
    if be_u32(file, 4)? >= 3 && be_u64(file, 72)? & EXTENDED_L2 != 0 {
        return None;
    }
    let cluster = 1u64 << cluster_bits;
    let l2_entries = cluster / 8;
    let l1_size = be_u32(file, 36)? as u64;
    let l1_offset = be_u64(file, 40)?;
    let mut out = vec![0u8; len];
    let mut guest = 0u64;
    while (guest as usize) < len {
        let l1_index = guest / (cluster * l2_entries);
        let l2_index = (guest / cluster) % l2_entries;
        let in_cluster = guest % cluster;
        let chunk = (cluster - in_cluster).min(len as u64 - guest) as usize;
        if l1_index >= l1_size {
            return None;
        }
        let l2_offset = be_u64(file, l1_offset + l1_index * 8)? & OFFSET_MASK;
        if l2_offset != 0 {
            let entry = be_u64(file, l2_offset + l2_index * 8)?;
            if entry & COMPRESSED != 0 {
                return None;
            }
            let host = entry & OFFSET_MASK;
            if host != 0 && entry & ZERO_FLAG == 0 {
                let dst = &mut out[guest as usize..guest as usize + chunk];
                file.read_exact_at(dst, host + in_cluster).ok()?;
            }
        }
        guest += chunk as u64;
    }
    Some(out)
}

/// The guest's first `len` bytes, for the formats this can read.
pub fn read(file: &File, format: ImageFormat, len: usize) -> Option<Vec<u8>> {
    match format {
        ImageFormat::Raw => {
            let mut out = vec![0u8; len];
            let n = file.read_at(&mut out, 0).ok()?;
            out.truncate(n);
            Some(out)
        }
        ImageFormat::Qcow2 => qcow2_head(file, len),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn qcow2_matches_raw() {
        let d = tempfile::tempdir().unwrap();
        let raw = d.path().join("disk.raw");
        let mut data = vec![0u8; 3 * 1024 * 1024];
        for (i, b) in data.iter_mut().enumerate().take(40_000) {
            *b = (i % 251) as u8 + 1;
        }
        std::fs::write(&raw, &data).unwrap();
        for cluster in ["512", "4096", "65536"] {
            let q = d.path().join(format!("disk-{cluster}.qcow2"));
            let ok = Command::new("qemu-img")
                .args(["convert", "-q", "-f", "raw", "-O", "qcow2", "-o"])
                .arg(format!("cluster_size={cluster}"))
                .arg(&raw)
                .arg(&q)
                .status()
                .expect("qemu-img is needed for this test");
            assert!(ok.success());
            let head = read(&File::open(&q).unwrap(), ImageFormat::Qcow2, 34 * 512).unwrap();
            assert_eq!(head, data[..34 * 512], "cluster size {cluster}");
        }
        let head = read(&File::open(&raw).unwrap(), ImageFormat::Raw, 1024).unwrap();
        assert_eq!(head, data[..1024]);
    }
}
