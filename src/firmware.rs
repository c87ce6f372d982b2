//! Chooses BIOS or UEFI for an image from its partition table: a GPT disk
//! with an EFI system partition and no BIOS boot code needs UEFI; anything
//! else boots with SeaBIOS. Pure: the caller reads the disk's first sectors
//! (see `disk_head`).

use crate::annotations::FirmwareRequest;

/// How many bytes of the guest disk the decision reads: the MBR, the GPT
/// header and 128 partition entries.
pub const HEAD_LEN: usize = 34 * 512;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Firmware {
    Bios,
    Uefi,
}

/// C12A7328-F81F-11D2-BA4B-00A0C93EC93B as stored on disk.
const ESP_GUID: [u8; 16] = [
    0x28, 0x73, 0x2a, 0xc1, 0x1f, 0xf8, 0xd2, 0x11, 0xba, 0x4b, 0x00, 0xa0, 0xc9, 0x3e, 0xc9, 0x3b,
];
/// 21686148-6449-6E6F-744E-656564454649 ("Hah!IdontNeedEFI"): GRUB's BIOS
/// boot partition.
const BIOS_BOOT_GUID: [u8; 16] = *b"Hah!IdontNeedEFI";

fn le32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn le64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// The partition type GUIDs of a GPT disk, None when it has no GPT.
fn gpt_types(head: &[u8]) -> Option<Vec<[u8; 16]>> {
    let hdr = head.get(512..1024)?;
    if &hdr[..8] != b"EFI PART" {
        return None;
    }
    let entries_lba = le64(hdr, 72)? as usize;
    let count = le32(hdr, 80)? as usize;
    let size = le32(hdr, 84)? as usize;
    if size < 128 {
        return None;
    }
    let mut types = Vec::new();
    for i in 0..count.min(128) {
        let at = entries_lba.checked_mul(512)?.checked_add(i * size)?;
        let Some(t) = head.get(at..at + 16) else {
            break;
        };
        if t.iter().any(|&b| b != 0) {
            types.push(t.try_into().ok()?);
        }
    }
    Some(types)
}

/// What `auto` picks for a disk whose first bytes are `head`.
pub fn detect(head: &[u8]) -> Firmware {
    let bios_code = head
        .get(..440)
        .is_some_and(|code| code.iter().any(|&b| b != 0));
    match gpt_types(head) {
        Some(types)
            if types.contains(&ESP_GUID) && !bios_code && !types.contains(&BIOS_BOOT_GUID) =>
        {
            Firmware::Uefi
        }
        _ => Firmware::Bios,
    }
}

/// Applies the user's request; `detected` is asked only for `auto`.
pub fn choose(request: FirmwareRequest, detected: impl FnOnce() -> Firmware) -> Firmware {
    match request {
        FirmwareRequest::Bios => Firmware::Bios,
        FirmwareRequest::Uefi => Firmware::Uefi,
        FirmwareRequest::Auto => detected(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gpt(types: &[[u8; 16]], boot_code: bool) -> Vec<u8> {
        let mut d = vec![0u8; HEAD_LEN];
        if boot_code {
            d[0] = 0xeb;
            d[1] = 0x63;
        }
        d[510] = 0x55;
        d[511] = 0xaa;
        d[512..520].copy_from_slice(b"EFI PART");
        d[512 + 72..512 + 80].copy_from_slice(&2u64.to_le_bytes());
        d[512 + 80..512 + 84].copy_from_slice(&128u32.to_le_bytes());
        d[512 + 84..512 + 88].copy_from_slice(&128u32.to_le_bytes());
        for (i, t) in types.iter().enumerate() {
            d[1024 + i * 128..1024 + i * 128 + 16].copy_from_slice(t);
        }
        d
    }

    const LINUX: [u8; 16] = [
        0xaf, 0x3d, 0xc6, 0x0f, 0x83, 0x84, 0x72, 0x47, 0x8e, 0x79, 0x3d, 0x69, 0xd8, 0x47, 0x7d,
        0xe4,
    ];

    #[test]
    fn esp_without_bios_code_is_uefi() {
        assert_eq!(detect(&gpt(&[ESP_GUID, LINUX], false)), Firmware::Uefi);
    }

    #[test]
    fn hybrid_images_boot_with_bios() {
        assert_eq!(detect(&gpt(&[ESP_GUID, LINUX], true)), Firmware::Bios);
        assert_eq!(
            detect(&gpt(&[BIOS_BOOT_GUID, ESP_GUID, LINUX], false)),
            Firmware::Bios
        );
    }

    #[test]
    fn mbr_and_plain_gpt_boot_with_bios() {
        let mut mbr = vec![0u8; HEAD_LEN];
        mbr[0] = 0xeb;
        assert_eq!(detect(&mbr), Firmware::Bios);
        assert_eq!(detect(&gpt(&[LINUX], false)), Firmware::Bios);
        assert_eq!(detect(&[]), Firmware::Bios);
    }

    #[test]
    fn explicit_requests_win() {
        assert_eq!(
            choose(FirmwareRequest::Uefi, || panic!("read")),
            Firmware::Uefi
        );
        assert_eq!(
            choose(FirmwareRequest::Bios, || panic!("read")),
            Firmware::Bios
        );
        let esp = gpt(&[ESP_GUID], false);
        assert_eq!(
            choose(FirmwareRequest::Auto, || detect(&esp)),
            Firmware::Uefi
        );
        assert_eq!(
            choose(FirmwareRequest::Auto, || Firmware::Bios),
            Firmware::Bios
        );
    }
}
