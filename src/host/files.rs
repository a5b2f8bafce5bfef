//! The only functions that write files, and the one that reads secret files.
//!
//! Writes are atomic (temp file beside the target, fsync, rename, fsync the directory) so kubelet
//! never reads half a file and a crash leaves either the old or the new file; modes are set
//! explicitly so the process umask neither widens nor narrows them. Temp files are named
//! `.<name>.<pid>.<n>.tmp`; [`remove_stale_temp_files`] clears the ones a crash left behind.

use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{symlink, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::model::exit_code::ExitCode;
use zeroize::Zeroizing;

/// File system errors; each names the path (as this process sees it) and the OS error.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    #[error("cannot create directory {}: {source}", path.display())]
    CreateDir { path: PathBuf, source: io::Error },
    #[error("cannot set permissions of {}: {source}", path.display())]
    SetMode { path: PathBuf, source: io::Error },
    #[error("cannot write {}: {source}", path.display())]
    Write { path: PathBuf, source: io::Error },
    #[error("cannot create symlink {}: {source}", path.display())]
    Symlink { path: PathBuf, source: io::Error },
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("cannot clean up temporary files in {}: {source}", path.display())]
    Cleanup { path: PathBuf, source: io::Error },
    /// A secret file others could read. No io::Error here: the read worked, the mode is wrong.
    #[error(
        "refusing to read {what} {}: it is readable by group or others (mode {mode:04o}); \
         run `chmod 600 {}` and try again",
        path.display(),
        path.display()
    )]
    TooOpen {
        what: String,
        path: PathBuf,
        mode: u32,
    },
    #[error("the {what} {path} is not a regular file; give the path of the file itself")]
    NotAFile { what: String, path: PathBuf },
    #[error(
        "the {what} {} is {size} bytes, more than such a file can be ({limit} at most): give \
         the right file",
        path.display()
    )]
    TooLarge {
        what: String,
        path: PathBuf,
        size: u64,
        limit: u64,
    },
}

impl FsError {
    /// The documented exit code: always Filesystem (a local file could not be read or written).
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::Filesystem
    }
}

/// Creates `path` and its parents, then sets `path`'s own mode (parents keep the umask's).
pub fn ensure_dir(path: &Path, mode: u32) -> Result<(), FsError> {
    fs::create_dir_all(path).map_err(|source| FsError::CreateDir {
        path: path.to_owned(),
        source,
    })?;
    fs::set_permissions(path, Permissions::from_mode(mode)).map_err(|source| FsError::SetMode {
        path: path.to_owned(),
        source,
    })
}

/// Distinguishes temp files of concurrent writes in this process.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// `<dir>/.<name>.<pid>.<n>.tmp`, beside `target` so the rename stays on one file system.
fn temp_path_for(target: &Path) -> io::Result<PathBuf> {
    let name = target
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "the path has no file name"))?;
    let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let tmp = format!(".{}.{}.{n}.tmp", name.to_string_lossy(), std::process::id());
    Ok(target.with_file_name(tmp))
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Makes a rename durable: the directory entry itself must reach the disk.
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Writes `contents` to `path` with exactly `mode`, atomically. On any error the temp file is
/// removed and the old `path` (if any) is untouched.
pub fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<(), FsError> {
    let err = |source| FsError::Write {
        path: path.to_owned(),
        source,
    };
    let tmp = temp_path_for(path).map_err(err)?;
    // create_new: never follow or reuse something already sitting at the temp name.
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(err)?;
    let result = (|| {
        // The open mode was filtered by the umask; set it exactly before any content lands.
        file.set_permissions(Permissions::from_mode(mode))?;
        file.write_all(contents)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, path)?;
        sync_dir(parent_dir(path))
    })();
    if let Err(source) = result {
        // After a successful rename the temp name no longer exists; ignoring NotFound is fine.
        let _ = fs::remove_file(&tmp);
        return Err(err(source));
    }
    Ok(())
}

/// Points `link` at `target` (given relative to `link`'s directory, so it stays right under
/// `--root`), replacing any existing link atomically.
pub fn symlink_atomic(target: &Path, link: &Path) -> Result<(), FsError> {
    let err = |source| FsError::Symlink {
        path: link.to_owned(),
        source,
    };
    let tmp = temp_path_for(link).map_err(err)?;
    symlink(target, &tmp).map_err(err)?;
    let result = fs::rename(&tmp, link).and_then(|()| sync_dir(parent_dir(link)));
    if let Err(source) = result {
        let _ = fs::remove_file(&tmp);
        return Err(err(source));
    }
    Ok(())
}

/// Reads a secret (token file, private key), refusing files that group or others may read.
/// The mode is checked on the opened file, so a swap between check and read does not matter.
/// Private files are small (a token is 23 bytes, a key and certificate a few KB): anything
/// larger is refused before it is read.
pub const MAX_PRIVATE_FILE: u64 = 64 * 1024;

pub fn read_private_file(path: &Path, what: &str) -> Result<Zeroizing<Vec<u8>>, FsError> {
    let err = |source| FsError::Read {
        path: path.to_owned(),
        source,
    };
    let file = File::open(path).map_err(err)?;
    let meta = file.metadata().map_err(err)?;
    if !meta.is_file() {
        return Err(FsError::NotAFile {
            what: what.to_owned(),
            path: path.to_owned(),
        });
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(FsError::TooOpen {
            what: what.to_owned(),
            path: path.to_owned(),
            mode,
        });
    }
    let too_large = |size: u64| FsError::TooLarge {
        what: what.to_owned(),
        path: path.to_owned(),
        size,
        limit: MAX_PRIVATE_FILE,
    };
    if meta.len() > MAX_PRIVATE_FILE {
        return Err(too_large(meta.len()));
    }
    let mut buf = Zeroizing::new(Vec::new());
    // The file may grow between the check and the read: never read past the limit.
    file.take(MAX_PRIVATE_FILE + 1)
        .read_to_end(&mut buf)
        .map_err(err)?;
    if buf.len() as u64 > MAX_PRIVATE_FILE {
        return Err(too_large(buf.len() as u64));
    }
    Ok(buf)
}

/// Removes `.*.tmp` entries a crashed write left in `dir`. A missing `dir` has none.
pub fn remove_stale_temp_files(dir: &Path) -> Result<(), FsError> {
    let err = |source| FsError::Cleanup {
        path: dir.to_owned(),
        source,
    };
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(err(e)),
    };
    for entry in entries {
        let entry = entry.map_err(err)?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if !(name.starts_with('.') && name.ends_with(".tmp") && name.len() > ".tmp".len()) {
            continue;
        }
        // Only files and symlinks (ours are one or the other); never a directory.
        if entry.file_type().map_err(err)?.is_dir() {
            continue;
        }
        match fs::remove_file(entry.path()) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(err(e)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn mode_of(p: &Path) -> u32 {
        fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn write_atomic_sets_exact_modes_and_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        write_atomic(&a, b"one", 0o644).unwrap();
        assert_eq!(fs::read(&a).unwrap(), b"one");
        assert_eq!(mode_of(&a), 0o644);
        write_atomic(&a, b"two", 0o600).unwrap();
        assert_eq!(fs::read(&a).unwrap(), b"two");
        assert_eq!(mode_of(&a), 0o600);
        assert_eq!(entries(dir.path()), vec!["a"]);
    }

    /// Runs only as a child of `modes_do_not_depend_on_umask`, under a given umask.
    #[test]
    #[ignore = "run by modes_do_not_depend_on_umask in a child process with a chosen umask"]
    fn umask_child() {
        let Ok(dir) = std::env::var("KAAS_JOIN_FS_TEST_DIR") else {
            return;
        };
        let dir = Path::new(&dir);
        write_atomic(&dir.join("public"), b"x", 0o644).unwrap();
        write_atomic(&dir.join("private"), b"x", 0o600).unwrap();
        ensure_dir(&dir.join("d/e"), 0o700).unwrap();
    }

    #[test]
    fn modes_do_not_depend_on_umask() {
        // The umask is per process and setting it needs libc; run a copy of this test binary
        // under `sh -c 'umask ...'` instead.
        let exe = std::env::current_exe().unwrap();
        for umask in ["0377", "0000"] {
            let dir = tempfile::tempdir().unwrap();
            let status = Command::new("sh")
                .arg("-c")
                .arg(format!("umask {umask} && exec \"$0\" \"$@\""))
                .arg(&exe)
                .args([
                    "host::files::tests::umask_child",
                    "--exact",
                    "--ignored",
                    "--quiet",
                ])
                .env("KAAS_JOIN_FS_TEST_DIR", dir.path())
                .stdout(std::process::Stdio::null())
                .status()
                .unwrap();
            assert!(status.success(), "child under umask {umask} failed");
            assert_eq!(mode_of(&dir.path().join("public")), 0o644, "umask {umask}");
            assert_eq!(mode_of(&dir.path().join("private")), 0o600, "umask {umask}");
            assert_eq!(mode_of(&dir.path().join("d/e")), 0o700, "umask {umask}");
            assert_eq!(entries(dir.path()), vec!["d", "private", "public"]);
        }
    }

    #[test]
    fn failed_write_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        // A directory in the way: the temp file is written, the rename fails.
        let target = dir.path().join("kubelet.conf");
        fs::create_dir(&target).unwrap();
        let err = write_atomic(&target, b"x", 0o600).unwrap_err();
        assert!(matches!(err, FsError::Write { .. }), "{err:?}");
        assert!(err
            .to_string()
            .starts_with(&format!("cannot write {}: ", target.display())));
        assert_eq!(entries(dir.path()), vec!["kubelet.conf"]);
        // A missing directory: nothing is created at all.
        let missing = dir.path().join("nope/file");
        assert!(write_atomic(&missing, b"x", 0o600).is_err());
        assert_eq!(entries(dir.path()), vec!["kubelet.conf"]);
    }

    #[test]
    fn unwritable_dir_is_an_error_with_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let ro = dir.path().join("ro");
        ensure_dir(&ro, 0o500).unwrap();
        let target = ro.join("config.yaml");
        match write_atomic(&target, b"x", 0o644) {
            // root ignores directory permissions; nothing to check then.
            Ok(()) => assert_eq!(fs::read(&target).unwrap(), b"x"),
            Err(e) => {
                let msg = e.to_string();
                assert!(msg.contains(&target.display().to_string()), "{msg}");
                assert!(msg.contains("Permission denied"), "{msg}");
                assert!(entries(&ro).is_empty());
            }
        }
        fs::set_permissions(&ro, Permissions::from_mode(0o700)).unwrap();
    }

    #[test]
    fn symlink_is_relative_and_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("kubelet-client-current.pem");
        fs::write(
            dir.path().join("kubelet-client-2026-11-27-07-30-00.pem"),
            b"old",
        )
        .unwrap();
        fs::write(
            dir.path().join("kubelet-client-2026-11-28-07-30-00.pem"),
            b"new",
        )
        .unwrap();
        symlink_atomic(Path::new("kubelet-client-2026-11-27-07-30-00.pem"), &link).unwrap();
        assert_eq!(fs::read(&link).unwrap(), b"old");
        symlink_atomic(Path::new("kubelet-client-2026-11-28-07-30-00.pem"), &link).unwrap();
        assert_eq!(
            fs::read_link(&link).unwrap(),
            PathBuf::from("kubelet-client-2026-11-28-07-30-00.pem")
        );
        assert_eq!(fs::read(&link).unwrap(), b"new");
        assert_eq!(entries(dir.path()).len(), 3, "{:?}", entries(dir.path()));
        // Replacing a directory fails and leaves no temp link.
        let d = dir.path().join("adir");
        fs::create_dir(&d).unwrap();
        fs::write(d.join("f"), b"").unwrap();
        assert!(matches!(
            symlink_atomic(Path::new("x"), &d).unwrap_err(),
            FsError::Symlink { .. }
        ));
        assert_eq!(entries(dir.path()).len(), 4);
    }

    #[test]
    fn private_files_must_be_private() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("token");
        write_atomic(&p, b"abcdef.0123456789abcdef\n", 0o644).unwrap();
        let err = read_private_file(&p, "bootstrap token file").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains(&format!("chmod 600 {}", p.display())), "{msg}");
        assert!(msg.contains("bootstrap token file"), "{msg}");
        assert!(msg.contains("0644"), "{msg}");
        assert!(!msg.contains("0123456789abcdef"));
        fs::set_permissions(&p, Permissions::from_mode(0o640)).unwrap();
        assert!(matches!(
            read_private_file(&p, "token").unwrap_err(),
            FsError::TooOpen { .. }
        ));
        fs::set_permissions(&p, Permissions::from_mode(0o600)).unwrap();
        assert_eq!(
            &*read_private_file(&p, "token").unwrap(),
            b"abcdef.0123456789abcdef\n"
        );
        fs::set_permissions(&p, Permissions::from_mode(0o400)).unwrap();
        assert!(read_private_file(&p, "token").is_ok());
        let missing = read_private_file(&dir.path().join("none"), "token").unwrap_err();
        assert!(matches!(missing, FsError::Read { .. }));
    }

    #[test]
    fn stale_temp_files_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(".kubelet.conf.123.0.tmp"), b"").unwrap();
        symlink("x", dir.path().join(".kubelet-client-current.pem.9.1.tmp")).unwrap();
        fs::write(dir.path().join("keep.tmp"), b"").unwrap();
        fs::write(dir.path().join(".keep"), b"").unwrap();
        fs::create_dir(dir.path().join(".dir.tmp")).unwrap();
        remove_stale_temp_files(dir.path()).unwrap();
        assert_eq!(entries(dir.path()), vec![".dir.tmp", ".keep", "keep.tmp"]);
        remove_stale_temp_files(&dir.path().join("missing")).unwrap();
    }
}
