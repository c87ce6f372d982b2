//! Recognises a VM disk image's format from its first bytes, without reading
//! the rest of it. Pure: the caller reads the header.

use std::fmt;

/// How many leading bytes [`probe`] needs to see.
pub const HEADER_LEN: usize = 4096;

/// A disk image format QEMU can boot from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageFormat {
    Qcow2,
    Qed,
    Raw,
    Vdi,
    Vhdx,
    Vmdk,
    Vpc,
}

impl ImageFormat {
    /// The name QEMU's block layer uses for the format driver.
    pub fn qemu_driver(self) -> &'static str {
        match self {
            ImageFormat::Qcow2 => "qcow2",
            ImageFormat::Qed => "qed",
            ImageFormat::Raw => "raw",
            ImageFormat::Vdi => "vdi",
            ImageFormat::Vhdx => "vhdx",
            ImageFormat::Vmdk => "vmdk",
            ImageFormat::Vpc => "vpc",
        }
    }
}

impl fmt::Display for ImageFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.qemu_driver())
    }
}

/// Why a file cannot be used as the VM's disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    Empty,
    Compressed(&'static str, &'static str),
    NotADisk(&'static str),
    Corrupt(String),
    BackingFile,
    Encrypted,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Empty => write!(f, "is empty"),
            Refusal::Compressed(kind, tool) => write!(
                f,
                "is {kind}-compressed, not a disk image: decompress it first ({tool}) and package the result"
            ),
            Refusal::NotADisk(kind) => write!(f, "is {kind}, not a VM disk image"),
            Refusal::Corrupt(why) => write!(f, "is a corrupt disk image: {why}"),
            Refusal::BackingFile => write!(
                f,
                "is a qcow2 image with a backing file, which would make QEMU read files outside the image: \
                 flatten it first (qemu-img convert -O qcow2 IN OUT)"
            ),
            Refusal::Encrypted => write!(f, "is LUKS-encrypted, which crun-qemu cannot open"),
        }
    }
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().unwrap())
}

fn be64(b: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(b[at..at + 8].try_into().unwrap())
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

fn starts(b: &[u8], at: usize, magic: &[u8]) -> bool {
    b.len() >= at + magic.len() && &b[at..at + magic.len()] == magic
}

fn qcow2(header: &[u8]) -> Result<ImageFormat, Refusal> {
    if header.len() < 72 {
        return Err(Refusal::Corrupt("truncated qcow2 header".into()));
    }
    let version = be32(header, 4);
    if version != 2 && version != 3 {
        return Err(Refusal::Corrupt(format!(
            "unsupported qcow2 version {version}"
        )));
    }
    let cluster_bits = be32(header, 20);
    if !(9..=21).contains(&cluster_bits) {
        return Err(Refusal::Corrupt(format!(
            "qcow2 cluster_bits {cluster_bits} out of range"
        )));
    }
    if be64(header, 24) == 0 {
        return Err(Refusal::Corrupt("qcow2 virtual size is 0".into()));
    }
    if be64(header, 8) != 0 || be32(header, 16) != 0 {
        return Err(Refusal::BackingFile);
    }
    if be32(header, 32) != 0 {
        return Err(Refusal::Encrypted);
    }
    Ok(ImageFormat::Qcow2)
}

/// Detects the format of a disk image from its first [`HEADER_LEN`] bytes
/// (fewer for a smaller file) and its size.
pub fn probe(header: &[u8], file_size: u64) -> Result<ImageFormat, Refusal> {
    if file_size == 0 || header.is_empty() {
        return Err(Refusal::Empty);
    }
    if starts(header, 0, b"QFI\xfb") {
        return qcow2(header);
    }
    if starts(header, 0, b"QED\0") {
        return Ok(ImageFormat::Qed);
    }
    if starts(header, 0, b"KDMV") {
        return Ok(ImageFormat::Vmdk);
    }
    if starts(header, 0, b"# Disk DescriptorFile") {
        return Err(Refusal::NotADisk(
            "a VMDK descriptor that points at other files (convert it to a single file with qemu-img convert)",
        ));
    }
    if header.len() >= 0x44 && le32(header, 0x40) == 0xbeda_107f {
        return Ok(ImageFormat::Vdi);
    }
    if starts(header, 0, b"vhdxfile") {
        return Ok(ImageFormat::Vhdx);
    }
    if starts(header, 0, b"conectix") {
        return Ok(ImageFormat::Vpc);
    }
    if starts(header, 0, b"LUKS\xba\xbe") {
        return Err(Refusal::Encrypted);
    }
    for (magic, kind, tool) in [
        (&b"\xfd7zXZ\0"[..], "xz", "xz -d"),
        (&b"\x1f\x8b"[..], "gzip", "gzip -d"),
        (&b"\x28\xb5\x2f\xfd"[..], "zstd", "zstd -d"),
        (&b"BZh"[..], "bzip2", "bzip2 -d"),
    ] {
        if starts(header, 0, magic) {
            return Err(Refusal::Compressed(kind, tool));
        }
    }
    for (at, magic, kind) in [
        (0, &b"\x7fELF"[..], "an ELF executable"),
        (0, &b"#!"[..], "a script"),
        (0, &b"PK\x03\x04"[..], "a zip archive"),
        (257, &b"ustar"[..], "a tar archive"),
    ] {
        if starts(header, at, magic) {
            return Err(Refusal::NotADisk(kind));
        }
    }
    // Anything else is taken as a raw image: raw has no header to check.
    Ok(ImageFormat::Raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn qcow2_header(version: u32, backing: u64, cluster_bits: u32) -> Vec<u8> {
        let mut h = vec![0u8; 512];
        h[0..4].copy_from_slice(b"QFI\xfb");
        h[4..8].copy_from_slice(&version.to_be_bytes());
        h[8..16].copy_from_slice(&backing.to_be_bytes());
        h[20..24].copy_from_slice(&cluster_bits.to_be_bytes());
        h[24..32].copy_from_slice(&(1u64 << 30).to_be_bytes());
        h
    }

    #[test]
    fn recognises_qcow2() {
        assert_eq!(
            probe(&qcow2_header(3, 0, 16), 1 << 20),
            Ok(ImageFormat::Qcow2)
        );
        assert_eq!(
            probe(&qcow2_header(2, 0, 16), 1 << 20),
            Ok(ImageFormat::Qcow2)
        );
    }

    #[test]
    fn refuses_qcow2_with_backing_file() {
        assert_eq!(
            probe(&qcow2_header(3, 0x200, 16), 1 << 20),
            Err(Refusal::BackingFile)
        );
    }

    #[test]
    fn refuses_corrupt_qcow2() {
        assert!(matches!(
            probe(&qcow2_header(99, 0, 16), 1 << 20),
            Err(Refusal::Corrupt(_))
        ));
        assert!(matches!(
            probe(&qcow2_header(3, 0, 40), 1 << 20),
            Err(Refusal::Corrupt(_))
        ));
        assert!(matches!(probe(b"QFI\xfb\0\0", 6), Err(Refusal::Corrupt(_))));
    }

    #[test]
    fn recognises_other_formats() {
        assert_eq!(probe(b"KDMV\x01\0\0\0", 8), Ok(ImageFormat::Vmdk));
        assert_eq!(probe(b"vhdxfile....", 12), Ok(ImageFormat::Vhdx));
        assert_eq!(probe(b"conectix....", 12), Ok(ImageFormat::Vpc));
        assert_eq!(probe(b"QED\0....", 8), Ok(ImageFormat::Qed));
        let mut vdi = vec![0u8; 512];
        vdi[0x40..0x44].copy_from_slice(&0xbeda_107fu32.to_le_bytes());
        assert_eq!(probe(&vdi, 512), Ok(ImageFormat::Vdi));
        let mut mbr = vec![0u8; 512];
        mbr[510] = 0x55;
        mbr[511] = 0xaa;
        assert_eq!(probe(&mbr, 1 << 20), Ok(ImageFormat::Raw));
    }

    #[test]
    fn refuses_compressed_and_non_disks() {
        let err = probe(b"\xfd7zXZ\0rest", 100).unwrap_err();
        assert_eq!(err, Refusal::Compressed("xz", "xz -d"));
        assert!(err.to_string().contains("decompress it first (xz -d)"));
        assert_eq!(
            probe(b"\x1f\x8b\x08", 100).unwrap_err(),
            Refusal::Compressed("gzip", "gzip -d")
        );
        assert_eq!(
            probe(b"\x7fELF\x02", 100).unwrap_err(),
            Refusal::NotADisk("an ELF executable")
        );
        assert_eq!(probe(b"", 0).unwrap_err(), Refusal::Empty);
        let mut tar = vec![0u8; 512];
        tar[257..262].copy_from_slice(b"ustar");
        assert_eq!(
            probe(&tar, 512).unwrap_err(),
            Refusal::NotADisk("a tar archive")
        );
    }
}
