//! Renders a [`VmConfig`] as a QEMU command line. Pure.

use serde_json::{json, Value};

use crate::vm::{Accel, BootDisk, Firmware, VmConfig};

/// Path of the QEMU binary inside the container (the host's `/usr`, bound
/// read-only by `rootfs_setup`).
pub const QEMU_BINARY: &str = "/usr/bin/qemu-system-x86_64";

/// The boot disk's block nodes. -blockdev takes JSON so that no file name
/// (which comes from the untrusted image) can inject options through commas.
fn block_nodes(disk: &BootDisk) -> Vec<Value> {
    let file = |path: &std::path::Path, read_only: bool| json!({"driver": "file", "filename": path, "read-only": read_only});
    match &disk.overlay {
        Some(overlay) => vec![
            json!({
                "driver": disk.format.qemu_driver(),
                "node-name": "image",
                "read-only": true,
                "file": file(&disk.image, true),
            }),
            json!({
                "driver": "qcow2",
                "node-name": "disk0",
                "file": file(overlay, false),
                "backing": "image",
            }),
        ],
        None => vec![json!({
            "driver": disk.format.qemu_driver(),
            "node-name": "disk0",
            "file": file(&disk.image, false),
        })],
    }
}

pub fn render(vm: &VmConfig) -> Vec<String> {
    let (accel, cpu) = match vm.accel {
        Accel::Kvm => ("kvm".to_string(), "host"),
        Accel::Tcg => (format!("tcg,tb-size={}", vm.tb_cache_mib), "max"),
    };
    let mut args: Vec<String> = vec![
        QEMU_BINARY.into(),
        "-nodefaults".into(),
        "-no-user-config".into(),
        // vCPU threads get names ("CPU 0/TCG"), which top and ps show.
        "-name".into(),
        "guest=crun-qemu,debug-threads=on".into(),
        "-machine".into(),
        "q35".into(),
        "-accel".into(),
        accel,
        "-cpu".into(),
        cpu.into(),
        "-smp".into(),
        vm.vcpus.to_string(),
        "-m".into(),
        format!("{}M", vm.memory_mib),
        "-display".into(),
        "none".into(),
    ];
    if let Firmware::Uefi { code, vars } = &vm.firmware {
        for (unit, path, ro) in [(0, code, "on"), (1, vars, "off")] {
            args.push("-drive".into());
            args.push(format!(
                "if=pflash,format=raw,unit={unit},readonly={ro},file={}",
                path.display().to_string().replace(',', ",,")
            ));
        }
    }
    args.extend([
        // The serial console and the human monitor share the container's
        // stdio; ctrl-a x quits, ctrl-a c toggles the monitor, and ctrl-c
        // reaches the guest instead of killing QEMU.
        "-chardev".into(),
        "stdio,id=console,mux=on,signal=off".into(),
        "-serial".into(),
        "chardev:console".into(),
        "-mon".into(),
        "chardev=console,mode=readline".into(),
        "-chardev".into(),
        format!("socket,id=qmp,fd={},server=on,wait=off", vm.qmp_fd),
        "-mon".into(),
        "chardev=qmp,mode=control".into(),
    ]);
    for node in block_nodes(&vm.boot_disk) {
        args.push("-blockdev".into());
        args.push(node.to_string());
    }
    args.extend([
        "-device".into(),
        "virtio-blk-pci,drive=disk0,bootindex=0".into(),
        "-device".into(),
        "virtio-rng-pci".into(),
    ]);
    args
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image_format::ImageFormat;

    fn vm() -> VmConfig {
        VmConfig {
            accel: Accel::Tcg,
            tb_cache_mib: 64,
            vcpus: 2,
            memory_mib: 1024,
            firmware: Firmware::Bios,
            boot_disk: BootDisk {
                image: "/disk/fedora,x=1.qcow2".into(),
                format: ImageFormat::Qcow2,
                overlay: Some("/.crun-qemu/overlay.qcow2".into()),
            },
            qmp_fd: 3,
        }
    }

    #[test]
    fn golden_tcg_command_line() {
        let got = render(&vm()).join(" ");
        let want = concat!(
            "/usr/bin/qemu-system-x86_64 -nodefaults -no-user-config -name guest=crun-qemu,debug-threads=on ",
            "-machine q35 -accel tcg,tb-size=64 -cpu max -smp 2 -m 1024M -display none ",
            "-chardev stdio,id=console,mux=on,signal=off -serial chardev:console ",
            "-mon chardev=console,mode=readline ",
            "-chardev socket,id=qmp,fd=3,server=on,wait=off -mon chardev=qmp,mode=control ",
            r#"-blockdev {"driver":"qcow2","file":{"driver":"file","filename":"/disk/fedora,x=1.qcow2","read-only":true},"node-name":"image","read-only":true} "#,
            r#"-blockdev {"backing":"image","driver":"qcow2","file":{"driver":"file","filename":"/.crun-qemu/overlay.qcow2","read-only":false},"node-name":"disk0"} "#,
            "-device virtio-blk-pci,drive=disk0,bootindex=0 -device virtio-rng-pci"
        );
        assert_eq!(got, want);
    }

    #[test]
    fn kvm_uses_the_host_cpu() {
        let mut v = vm();
        v.accel = Accel::Kvm;
        let args = render(&v);
        assert!(args.windows(2).any(|w| w[0] == "-accel" && w[1] == "kvm"));
        assert!(args.windows(2).any(|w| w[0] == "-cpu" && w[1] == "host"));
    }

    #[test]
    fn persistent_disk_is_the_image_itself() {
        let mut v = vm();
        v.boot_disk.format = ImageFormat::Raw;
        v.boot_disk.overlay = None;
        let args = render(&v);
        let nodes: Vec<&String> = args
            .windows(2)
            .filter(|w| w[0] == "-blockdev")
            .map(|w| &w[1])
            .collect();
        assert_eq!(nodes.len(), 1);
        let node: Value = serde_json::from_str(nodes[0]).unwrap();
        assert_eq!(node["driver"], "raw");
        assert_eq!(node["node-name"], "disk0");
        assert_eq!(node["file"]["read-only"], false);
    }

    #[test]
    fn uefi_adds_read_only_code_and_private_vars() {
        let mut v = vm();
        v.firmware = Firmware::Uefi {
            code: "/usr/share/OVMF/OVMF_CODE_4M.fd".into(),
            vars: "/.crun-qemu/OVMF_VARS.fd".into(),
        };
        let args = render(&v).join(" ");
        assert!(args.contains(
            "-drive if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd \
             -drive if=pflash,format=raw,unit=1,readonly=off,file=/.crun-qemu/OVMF_VARS.fd"
        ));
    }
}
