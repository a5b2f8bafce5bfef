//! The binary swap: the new kubelet copied beside `run --kubelet` and renamed over it (a
//! reader sees the old binary or the new one, never half of one), the old one kept as
//! `<kubelet>.previous` (a hard link, a copy where links are not possible), and the way back.
//! Blocking file system calls: run them in `spawn_blocking`.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

/// `<kubelet>.previous`: the binary before the last upgrade.
pub fn previous_path(kubelet: &Path) -> PathBuf {
    with_suffix(kubelet, ".previous")
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    path.with_file_name(name)
}

/// A hidden temporary name beside `path` (`.<name>.<what>.tmp`, which `files` cleans up).
fn temp_beside(path: &Path, what: &str) -> PathBuf {
    let mut name = std::ffi::OsString::from(".");
    name.push(path.file_name().unwrap_or_default());
    name.push(format!(".{what}.tmp"));
    path.with_file_name(name)
}

/// `from` copied to `to` atomically: a temporary copy beside `to`, 0755, synced, renamed.
fn copy_atomic(from: &Path, to: &Path) -> io::Result<()> {
    let tmp = temp_beside(to, "new");
    let _ = fs::remove_file(&tmp);
    let result = (|| {
        fs::copy(from, &tmp)?;
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o755))?;
        fs::File::open(&tmp)?.sync_all()?;
        fs::rename(&tmp, to)?;
        sync_dir(to)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn sync_dir(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => fs::File::open(dir)?.sync_all(),
        _ => Ok(()),
    }
}

/// Keeps the binary now at `kubelet` as `<kubelet>.previous` (replacing an older one).
fn keep_previous(kubelet: &Path) -> io::Result<()> {
    let previous = previous_path(kubelet);
    let tmp = temp_beside(&previous, "link");
    let _ = fs::remove_file(&tmp);
    match fs::hard_link(kubelet, &tmp) {
        Ok(()) => fs::rename(&tmp, &previous),
        Err(_) => copy_atomic(kubelet, &previous),
    }
}

/// Puts `new` in place of `kubelet`, the old binary kept as `<kubelet>.previous`. On an error
/// `kubelet` is unchanged.
pub fn install(new: &Path, kubelet: &Path) -> io::Result<()> {
    keep_previous(kubelet)?;
    copy_atomic(new, kubelet)
}

/// Puts `<kubelet>.previous` back in place of `kubelet` (copied: `.previous` stays, so a
/// rollback can be repeated).
pub fn restore(kubelet: &Path) -> io::Result<()> {
    copy_atomic(&previous_path(kubelet), kubelet)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn install_keeps_the_previous_binary_and_restore_puts_it_back() {
        let dir = tempfile::tempdir().unwrap();
        let kubelet = dir.path().join("kubelet");
        let new = dir.path().join("kubelet-v2");
        fs::write(&kubelet, "old").unwrap();
        fs::write(&new, "new").unwrap();
        install(&new, &kubelet).unwrap();
        assert_eq!(fs::read_to_string(&kubelet).unwrap(), "new");
        assert_eq!(fs::read_to_string(previous_path(&kubelet)).unwrap(), "old");
        let mode = fs::metadata(&kubelet).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o755);
        restore(&kubelet).unwrap();
        assert_eq!(fs::read_to_string(&kubelet).unwrap(), "old");
        assert_eq!(fs::read_to_string(previous_path(&kubelet)).unwrap(), "old");
        let names: Vec<String> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().all(|n| !n.ends_with(".tmp")), "{names:?}");
        // A missing new binary changes nothing.
        assert!(install(&dir.path().join("missing"), &kubelet).is_err());
        assert_eq!(fs::read_to_string(&kubelet).unwrap(), "old");
    }
}
