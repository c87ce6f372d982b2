//! Where crun is and where it loads handlers from, and the handler's
//! install/uninstall into that directory. Runs in the launcher, on the host.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// File name of the handler library, in `target/` and once installed.
pub const HANDLER_FILE: &str = "libcrun_qemu.so";
/// Overrides which crun binary the launcher runs.
pub const CRUN_ENV: &str = "CRUN_QEMU_CRUN";

/// The crun binary the launcher hands commands to.
pub fn crun_binary() -> PathBuf {
    if let Some(p) = std::env::var_os(CRUN_ENV) {
        return PathBuf::from(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    std::env::split_paths(&path)
        .map(|d| d.join("crun"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from("/usr/bin/crun"))
}

/// Finds the handler directory compiled into a crun binary: the NUL
/// terminated absolute path ending in `/crun/handlers`.
pub fn handler_dir_in(binary: &[u8]) -> Option<PathBuf> {
    const SUFFIX: &[u8] = b"/crun/handlers\0";
    for end in memchr::memmem::find_iter(binary, SUFFIX) {
        let start = binary[..end]
            .iter()
            .rposition(|&b| b == 0)
            .map_or(0, |i| i + 1);
        let s = &binary[start..end + SUFFIX.len() - 1];
        if s.first() == Some(&b'/') && s.iter().all(|b| b.is_ascii_graphic()) {
            return Some(PathBuf::from(String::from_utf8_lossy(s).into_owned()));
        }
    }
    None
}

/// The directory `crun` loads handlers from.
pub fn handler_dir(crun: &Path) -> Result<PathBuf> {
    let bytes = fs::read(crun).with_context(|| format!("cannot read {}", crun.display()))?;
    handler_dir_in(&bytes).with_context(|| {
        format!(
            "{} has no handler directory compiled in: it was built without custom handler support",
            crun.display()
        )
    })
}

/// The handler built alongside the running launcher, if there is one.
pub fn handler_next_to_launcher() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let so = exe.parent()?.join(HANDLER_FILE);
    so.is_file().then_some(so)
}

/// Copies the handler into crun's handler directory, atomically, so that
/// plain crun (and CRI-O) load it.
pub fn install(handler: &Path, dir: &Path) -> Result<PathBuf> {
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let dest = dir.join(HANDLER_FILE);
    // A dot file is never loaded by crun, so a half-copied library is
    // never seen.
    let tmp = dir.join(format!(".{HANDLER_FILE}.tmp"));
    fs::copy(handler, &tmp)
        .with_context(|| format!("cannot copy {} to {}", handler.display(), tmp.display()))?;
    fs::rename(&tmp, &dest).with_context(|| format!("cannot install {}", dest.display()))?;
    Ok(dest)
}

/// Removes the installed handler; removing a handler that is not there is
/// not an error.
pub fn uninstall(dir: &Path) -> Result<Option<PathBuf>> {
    let dest = dir.join(HANDLER_FILE);
    match fs::remove_file(&dest) {
        Ok(()) => Ok(Some(dest)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => bail!("cannot remove {}: {e}", dest.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_compiled_in_directory() {
        let bin = b"\x7fELF\0junk\0/usr/lib/x86_64-linux-gnu/crun/handlers\0more\0";
        assert_eq!(
            handler_dir_in(bin),
            Some(PathBuf::from("/usr/lib/x86_64-linux-gnu/crun/handlers"))
        );
        assert_eq!(handler_dir_in(b"no such string here"), None);
        assert_eq!(handler_dir_in(b"\0relative/crun/handlers\0"), None);
    }

    #[test]
    fn install_and_uninstall() {
        let d = tempfile::tempdir().unwrap();
        let so = d.path().join("built.so");
        fs::write(&so, b"library").unwrap();
        let dir = d.path().join("lib/crun/handlers");
        let dest = install(&so, &dir).unwrap();
        assert_eq!(fs::read(&dest).unwrap(), b"library");
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1);
        assert_eq!(uninstall(&dir).unwrap(), Some(dest));
        assert_eq!(uninstall(&dir).unwrap(), None);
    }
}
