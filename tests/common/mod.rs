//! Shared set-up of the end-to-end tests: real podman, real crun, real QEMU
//! (under TCG), and test VM images built from Debian packages.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub const POWEROFF: &str = "localhost/crun-qemu-test/poweroff";
pub const WAIT: &str = "localhost/crun-qemu-test/wait";

pub struct Env {
    pub launcher: PathBuf,
    pub handler: PathBuf,
    pub images: PathBuf,
    pub root: PathBuf,
}

fn run_checked(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Builds the test images once per test binary and packages them.
pub fn env() -> &'static Env {
    static ENV: OnceLock<Env> = OnceLock::new();
    ENV.get_or_init(|| {
        // SAFETY: geteuid has no preconditions.
        let euid = unsafe { libc::geteuid() };
        assert!(
            euid == 0,
            "the end-to-end tests need root (podman, crun and mounts): run tests/setup-host.sh, then cargo test as root"
        );
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let launcher = PathBuf::from(env!("CARGO_BIN_EXE_crun-qemu"));
        let handler = launcher.with_file_name("libcrun_qemu.so");
        assert!(
            handler.is_file(),
            "{} is missing: run `cargo build` before `cargo test` (cargo test does not build the cdylib)",
            handler.display()
        );
        let images = std::env::var_os("CRUN_QEMU_TEST_IMAGES")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("target/test-images"));
        run_checked(Command::new(root.join("tests/build-test-images.sh")).arg(&images));
        for (file, tag) in [("poweroff.qcow2", POWEROFF), ("wait.raw", WAIT)] {
            run_checked(Command::new(root.join("package-vm-image.sh")).arg(images.join(file)).arg(tag));
        }
        Env { launcher, handler, images, root }
    })
}

pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "crun-qemu-test-{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Runs a command with a hard time limit so that a hung VM fails the test.
pub fn run_limited(secs: u32, program: &str, args: &[&str]) -> Output {
    Command::new("timeout")
        .arg("-k")
        .arg("10")
        .arg(secs.to_string())
        .arg(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"))
}

pub fn podman(args: &[&str]) -> Output {
    run_limited(300, "podman", args)
}

/// `podman run` through crun-qemu, TCG forced, with `extra` options before
/// the image.
pub fn podman_run(extra: &[&str], image: &str) -> Output {
    let launcher = env().launcher.to_str().unwrap().to_string();
    let runtime = format!("--runtime={launcher}");
    let mut args = vec!["run", runtime.as_str(), "--security-opt", "label=disable"];
    if !extra.iter().any(|a| a.starts_with("qemu.accel")) {
        args.extend(["--annotation", "qemu.accel=tcg"]);
    }
    args.extend(extra);
    args.extend([image, "unused"]);
    podman(&args)
}

/// Runs `image` through crun-qemu and checks that it is refused before
/// anything starts, with each of `expect` in the message, leaving no
/// container behind.
pub fn assert_refused(image: &str, extra: &[&str], expect: &[&str]) {
    env();
    let name = unique("refused");
    let mut args = vec!["--rm", "--name", name.as_str()];
    args.extend(extra);
    let out = podman_run(&args, image);
    let stderr = text(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{image} was not refused");
    for e in expect {
        assert!(stderr.contains(e), "expected {e:?} in:\n{stderr}");
    }
    assert!(!text(&out.stdout).contains("TEST-GUEST"), "the VM started");
    let ps = podman(&[
        "ps",
        "-a",
        "--filter",
        &format!("name={name}"),
        "--format",
        "{{.ID}}",
    ]);
    assert_eq!(text(&ps.stdout).trim(), "", "a container was left behind");
}

/// Removes the container when the test ends, however it ends.
pub struct Container(pub String);

impl Drop for Container {
    fn drop(&mut self) {
        let _ = podman(&["rm", "-f", "-t", "0", &self.0]);
    }
}

pub fn logs(name: &str) -> String {
    let out = podman(&["logs", name]);
    text(&out.stdout) + &text(&out.stderr)
}

/// Polls `probe` until it returns Some, or panics after `secs`.
pub fn wait_for<T>(secs: u64, what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {secs}s waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

pub fn wait_for_log(name: &str, needle: &str, secs: u64) -> String {
    wait_for(secs, &format!("{needle:?} in the logs of {name}"), || {
        let l = logs(name);
        l.contains(needle).then_some(l)
    })
}

pub fn inspect(name: &str, format: &str) -> String {
    text(&podman(&["inspect", "--format", format, name]).stdout)
        .trim()
        .to_string()
}

/// Builds a container image FROM scratch whose content `script` creates
/// under "$M" (buildah's mount of the new image).
pub fn scratch_image(tag: &str, script: &str) {
    let ctr = text(&run_checked(Command::new("buildah").args(["from", "scratch"])).stdout)
        .trim()
        .to_string();
    let mnt = text(&run_checked(Command::new("buildah").args(["mount", &ctr])).stdout)
        .trim()
        .to_string();
    run_checked(Command::new("sh").args(["-euc", script]).env("M", &mnt));
    run_checked(Command::new("buildah").args(["commit", "-q", &ctr, tag]));
    run_checked(Command::new("buildah").args(["rm", &ctr]));
}

/// Processes in the container's cgroup, as (pid, command line).
pub fn container_processes(id: &str) -> Vec<(u32, String)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Ok(cg) = std::fs::read_to_string(entry.path().join("cgroup")) {
            if cg.contains(id) {
                let cmd = std::fs::read_to_string(entry.path().join("cmdline")).unwrap_or_default();
                found.push((pid, cmd.replace('\0', " ")));
            }
        }
    }
    found
}

/// Packages a test image file under `tag` (once per test binary and tag).
pub fn package(file: &str, tag: &str) {
    static DONE: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let mut done = DONE.lock().unwrap();
    if done.iter().any(|t| t == tag) {
        return;
    }
    let e = env();
    run_checked(
        Command::new(e.root.join("package-vm-image.sh"))
            .arg(e.images.join(file))
            .arg(tag),
    );
    done.push(tag.to_string());
}

/// The value after `key=` on the guest's `TEST-GUEST:` lines.
pub fn guest_value(console: &str, key: &str) -> Option<String> {
    let needle = format!("{key}=");
    console
        .lines()
        .filter(|l| l.contains("TEST-GUEST:"))
        .find_map(|l| {
            l.split_whitespace()
                .find_map(|w| w.strip_prefix(needle.as_str()))
                .map(String::from)
        })
}

/// What a container left on the host: processes in its cgroup, mounts and
/// runtime state naming its id.
pub fn leftovers(id: &str) -> Vec<String> {
    assert!(id.len() >= 12, "bad container id {id:?}");
    let mut found: Vec<String> = container_processes(id)
        .into_iter()
        .map(|(pid, cmd)| format!("process {pid}: {cmd}"))
        .collect();
    for line in std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
    {
        if line.contains(id) {
            found.push(format!("mount: {line}"));
        }
    }
    for dir in [
        "/run/crun",
        "/var/lib/containers/storage/overlay-containers",
        "/run/containers/storage/overlay-containers",
    ] {
        let p = Path::new(dir).join(id);
        if p.exists() {
            found.push(format!("file: {}", p.display()));
        }
    }
    found
}

pub fn sha256(path: &Path) -> String {
    let out = run_checked(Command::new("sha256sum").arg(path));
    text(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}
