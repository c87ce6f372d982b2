//! What crun-qemu costs on top of QEMU, measured side by side in one run.
//! Every case runs several times, interleaved (ABC ABC …), on the same
//! machine in the same session; results are medians and ratios.
//!
//! Run it with `bench/run.sh [ROUNDS] [K]` (not part of `cargo test`).

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

const BENCH_B: &str = "localhost/crun-qemu-bench/by-hand";
const IMAGE_FILE: &str = "poweroff.qcow2";

/// QEMU's command line as the runtime renders it, but written by hand:
/// the console on stdio, the disk with a throwaway snapshot overlay.
fn qemu_by_hand(disk: &str) -> Vec<String> {
    let line = "/usr/bin/qemu-system-x86_64 -nodefaults -no-user-config -machine q35 -accel tcg,tb-size=64 \
                -cpu max -smp 2 -m 1024M -display none -chardev stdio,id=console,mux=on,signal=off \
                -serial chardev:console -mon chardev=console,mode=readline -device virtio-rng-pci \
                -device virtio-blk-pci,drive=disk0,bootindex=0";
    let mut args: Vec<String> = line.split_whitespace().map(String::from).collect();
    args.push("-drive".into());
    args.push(format!(
        "file={disk},format=qcow2,if=none,id=disk0,snapshot=on"
    ));
    args
}

/// Runs `cmd` to its end; returns the time to its first line on stdout,
/// the total time, and whether it succeeded.
fn timed(mut cmd: Command) -> (Duration, Duration, bool) {
    let start = Instant::now();
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let mut first = None;
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        if line.is_err() {
            break;
        }
        first.get_or_insert_with(|| start.elapsed());
    }
    let ok = child.wait().unwrap().success();
    let total = start.elapsed();
    (first.unwrap_or(total), total, ok)
}

fn podman_cmd(args: &[&str]) -> Command {
    let mut c = Command::new("podman");
    c.args(args);
    c
}

fn runtime_arg() -> String {
    format!("--runtime={}", env().launcher.display())
}

/// `podman run --runtime crun-qemu`, `extra` options before the image.
fn crun_qemu_run(extra: &[&str], image: &str) -> Command {
    let rt = runtime_arg();
    let mut args = vec![
        "run",
        rt.as_str(),
        "--security-opt",
        "label=disable",
        "--rm",
    ];
    args.extend(extra);
    args.extend([image, "unused"]);
    podman_cmd(&args)
}

fn case_a(image: &str) -> Command {
    crun_qemu_run(&[], image)
}

fn case_b() -> Command {
    let mut args: Vec<String> = [
        "run",
        "--security-opt",
        "label=disable",
        "--rm",
        "-v",
        "/usr:/usr:ro",
        BENCH_B,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(qemu_by_hand(&format!("/disk/{IMAGE_FILE}")));
    let mut c = Command::new("podman");
    c.args(args);
    c
}

fn case_c() -> Command {
    let args = qemu_by_hand(env().images.join(IMAGE_FILE).to_str().unwrap());
    let mut c = Command::new(&args[0]);
    c.args(&args[1..]);
    c
}

#[derive(Default)]
struct Series {
    name: String,
    values: Vec<f64>,
    failures: u32,
}

impl Series {
    fn new(name: &str) -> Self {
        Series {
            name: name.into(),
            ..Default::default()
        }
    }
    fn sorted(&self) -> Vec<f64> {
        let mut v = self.values.clone();
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v
    }
    fn median(&self) -> f64 {
        let v = self.sorted();
        if v.is_empty() {
            return f64::NAN;
        }
        let n = v.len();
        if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        }
    }
    fn json(&self, unit: &str) -> serde_json::Value {
        let v = self.sorted();
        json!({
            "name": self.name, "unit": unit, "runs": v.len(), "failures": self.failures,
            "min": v.first(), "median": self.median(), "max": v.last(), "values": self.values,
        })
    }
    fn row(&self, unit: &str) -> String {
        let v = self.sorted();
        format!(
            "| {:<46} | {:>5} | {:>9.3} | {:>9.3} | {:>9.3} | {:>4} |",
            self.name,
            unit,
            v.first().copied().unwrap_or(f64::NAN),
            self.median(),
            v.last().copied().unwrap_or(f64::NAN),
            format!(
                "{}{}",
                v.len(),
                if self.failures > 0 {
                    format!("/{}!", self.failures)
                } else {
                    String::new()
                }
            ),
        )
    }
}

fn record(series: &mut Series, sample: (Duration, Duration, bool), total: Option<&mut Series>) {
    if sample.2 {
        series.values.push(sample.0.as_secs_f64());
        if let Some(t) = total {
            t.values.push(sample.1.as_secs_f64());
        }
    } else {
        series.failures += 1;
    }
}

fn prepare_images() -> PathBuf {
    let e = env();
    // B: the same disk, plus the symlinks the host's /usr needs.
    scratch_image(
        BENCH_B,
        &format!(
            "mkdir -p $M/disk $M/var/tmp && cp {} $M/disk/ && ln -s usr/lib $M/lib && ln -s usr/lib64 $M/lib64 && ln -s usr/bin $M/bin",
            e.images.join(IMAGE_FILE).display()
        ),
    );
    // The same content in a 20 GiB sparse raw file, in a host directory
    // (--rootfs): container storage would copy 20 GiB of zeros first.
    let big = e.root.join("target/bench/big-rootfs");
    let file = big.join("disk/big.raw");
    let src = e.images.join("poweroff.raw");
    let stale = |p: &Path| {
        let m = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        m(p).is_none() || m(p) < m(&src)
    };
    if stale(&file) {
        let _ = std::fs::remove_file(&file);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        let ok = Command::new("sh")
            .arg("-ec")
            .arg(format!(
                "cp --sparse=always {src} {dst}.tmp && truncate -s 20G {dst}.tmp && mv {dst}.tmp {dst}",
                src = e.images.join("poweroff.raw").display(),
                dst = file.display()
            ))
            .status()
            .unwrap();
        assert!(ok.success());
    }
    let small = e.root.join("target/bench/small-rootfs");
    let sfile = small.join("disk/small.raw");
    if stale(&sfile) {
        std::fs::create_dir_all(sfile.parent().unwrap()).unwrap();
        std::fs::copy(e.images.join("poweroff.raw"), &sfile).unwrap();
    }
    e.root.join("target/bench")
}

fn case_rootfs(dir: &Path) -> Command {
    crun_qemu_run(&["--rootfs"], dir.to_str().unwrap())
}

/// Peak RSS (VmHWM, KiB) of every process in the container, split into
/// QEMU and the rest, sampled just before the VM is stopped.
fn memory_case() -> (u64, u64, Vec<String>) {
    let name = unique("bench-mem");
    let _c = Container(name.clone());
    let out = podman_run(
        &["-d", "--name", &name, "--annotation", "qemu.accel=auto"],
        WAIT,
    );
    assert!(out.status.success());
    let id = text(&out.stdout).trim().to_string();
    wait_for_log(&name, "TEST-GUEST: waiting for the power button", 120);
    let (mut qemu, mut rest, mut who) = (0, 0, Vec::new());
    for (pid, cmd) in container_processes(&id) {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let hwm: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
            .unwrap_or(0);
        let prog = cmd.split_whitespace().next().unwrap_or("").to_string();
        who.push(format!("{prog} (pid {pid}): {hwm} KiB"));
        if prog.ends_with("qemu-system-x86_64") {
            qemu += hwm;
        } else {
            rest += hwm;
        }
    }
    let _ = podman(&["stop", "-t", "60", &name]);
    (rest, qemu, who)
}

fn stop_case() -> (Duration, bool) {
    let name = unique("bench-stop");
    let _c = Container(name.clone());
    let out = podman_run(&["-d", "--name", &name], WAIT);
    assert!(out.status.success());
    wait_for_log(&name, "TEST-GUEST: waiting for the power button", 120);
    let start = Instant::now();
    let ok = podman(&["stop", "-t", "60", &name]).status.success();
    let took = start.elapsed();
    (took, ok && inspect(&name, "{{.State.ExitCode}}") == "0")
}

fn density_case(k: usize) -> (Duration, usize) {
    let handles: Vec<_> = (0..k)
        .map(|_| std::thread::spawn(|| timed(case_a(POWEROFF))))
        .collect();
    let mut ok = 0;
    let mut last_first = Duration::ZERO;
    for h in handles {
        let (first, _, success) = h.join().unwrap();
        if success {
            ok += 1;
            last_first = last_first.max(first);
        }
    }
    (last_first, ok)
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let rounds: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(9);
    let k: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(4);
    let out_dir = prepare_images();
    let (small, big) = (out_dir.join("small-rootfs"), out_dir.join("big-rootfs"));

    // Warm-up: page cache, podman's storage, QEMU's binary.
    for cmd in [case_a(POWEROFF), case_b(), case_c()] {
        timed(cmd);
    }

    let mut a = Series::new("A: podman run --runtime crun-qemu");
    let mut b = Series::new("B: podman run (crun), QEMU by hand");
    let mut c = Series::new("C: QEMU on the host");
    let mut a_total = Series::new("A: ... to guest power-off");
    let mut b_total = Series::new("B: ... to guest power-off");
    let mut c_total = Series::new("C: ... to guest power-off");
    let mut s20m = Series::new("A --rootfs, 20 MiB raw image");
    let mut s20g = Series::new("A --rootfs, 20 GiB sparse raw image");
    let mut stop = Series::new("podman stop to exited (ACPI power-off)");
    for round in 0..rounds {
        eprintln!("round {}/{rounds}", round + 1);
        record(&mut a, timed(case_a(POWEROFF)), Some(&mut a_total));
        record(&mut b, timed(case_b()), Some(&mut b_total));
        record(&mut c, timed(case_c()), Some(&mut c_total));
        record(&mut s20m, timed(case_rootfs(&small)), None);
        record(&mut s20g, timed(case_rootfs(&big)), None);
        let (took, ok) = stop_case();
        record(&mut stop, (took, took, ok), None);
    }
    let (runner_kib, qemu_kib, who) = memory_case();
    let mut one = Series::new("one VM alone, to first guest line");
    let mut dense = Series::new(&format!("{k} VMs at once, to the last first line"));
    let mut failed = 0;
    for _ in 0..rounds.min(3) {
        record(&mut one, timed(case_a(POWEROFF)), None);
        let (t, ok) = density_case(k);
        failed += k - ok;
        if ok == k {
            dense.values.push(t.as_secs_f64());
        } else {
            dense.failures += 1;
        }
    }

    let ratio = |x: &Series, y: &Series| x.median() / y.median();
    println!("\n| case (time to the guest's first console line unless said) | unit  |       min |    median |       max | runs |");
    println!("|---|---|---|---|---|---|");
    for s in [
        &a, &b, &c, &a_total, &b_total, &c_total, &s20m, &s20g, &stop, &one, &dense,
    ] {
        println!("{}", s.row("s"));
    }
    println!();
    println!("| ratio | value | goal |");
    println!("|---|---|---|");
    println!("| A/B, first line (what the runtime adds over a hand-written container) | {:.3} | <= 1.05 |", ratio(&a, &b));
    println!(
        "| B/C, first line (what podman adds over plain QEMU) | {:.3} | |",
        ratio(&b, &c)
    );
    println!("| A/B, to power-off | {:.3} | |", ratio(&a_total, &b_total));
    println!(
        "| 20 GiB / 20 MiB image | {:.3} | <= 1.05 |",
        ratio(&s20g, &s20m)
    );
    println!(
        "| {k} VMs at once / ({k} x one VM) | {:.3} | none failed: {} |",
        dense.median() / (k as f64 * one.median()),
        failed == 0
    );
    println!();
    println!("| memory (peak RSS) | KiB | goal |");
    println!("|---|---|---|");
    println!("| container processes except QEMU (the runner; it starts no helper for qcow2 or raw) | {runner_kib} | <= 10240 together |");
    println!("| QEMU (1 GiB guest, TCG) | {qemu_kib} | |");
    for w in &who {
        println!("|   {w} | | |");
    }

    let report = json!({
        "date": String::from_utf8_lossy(&Command::new("date").arg("-u").arg("+%Y-%m-%dT%H:%M:%SZ").output().unwrap().stdout).trim(),
        "machine": {"cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0), "accel": "tcg"},
        "rounds": rounds,
        "series": [a.json("s"), b.json("s"), c.json("s"), a_total.json("s"), b_total.json("s"), c_total.json("s"),
                   s20m.json("s"), s20g.json("s"), stop.json("s"), one.json("s"), dense.json("s")],
        "ratios": {
            "a_over_b_first_line": ratio(&a, &b),
            "b_over_c_first_line": ratio(&b, &c),
            "a_over_b_poweroff": ratio(&a_total, &b_total),
            "size_20g_over_20m": ratio(&s20g, &s20m),
            "density": dense.median() / (k as f64 * one.median()),
        },
        "density": {"k": k, "failed": failed},
        "memory_kib": {"non_qemu": runner_kib, "qemu": qemu_kib, "processes": who},
    });
    let path = out_dir.join("results.json");
    std::fs::write(&path, serde_json::to_string_pretty(&report).unwrap()).unwrap();
    println!("\nwrote {}", path.display());
}
