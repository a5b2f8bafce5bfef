//! Under `--root`, symlinks in the tree are resolved inside the root as a chroot would: a join
//! into an image whose `/etc/kubernetes`, `/var/lib/kubelet`, `/var` or `/var/lib/kaas-join` is
//! a link (absolute, or relative and climbing with `..`) writes inside the root, never into the
//! build host; reset removes nothing outside it; a link loop is an error that names it.
//! (Issue 11, item 2: before, every one of these joins wrote outside the root.)

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use kaas_join::host::paths::{KUBELET_CLIENT_CURRENT, KUBELET_KUBECONFIG};
use kaas_sandbox::{Sandbox, SandboxConfig};

/// A root, and beside it (not inside) a victim folder that must stay empty.
struct Image {
    _dir: tempfile::TempDir,
    root: PathBuf,
    victim: PathBuf,
}

impl Image {
    fn new() -> Image {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let victim = dir.path().join("victim");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&victim).unwrap();
        Image {
            _dir: dir,
            root,
            victim,
        }
    }

    /// `ROOT/at` becomes a link to `to` (taken literally).
    fn link(&self, at: &str, to: impl AsRef<Path>) {
        let at = self.root.join(at);
        std::fs::create_dir_all(at.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(to, at).unwrap();
    }

    fn victim_files(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut stack = vec![self.victim.clone()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                if e.file_type().unwrap().is_dir() {
                    stack.push(e.path());
                } else {
                    out.push(e.path().display().to_string());
                }
            }
        }
        out
    }
}

async fn joined(sb: &Sandbox, image: &Image) -> Result<(), kaas_join::cmd::error::Error> {
    let token = sb.create_token();
    let cfg =
        common::sandbox_join_config(sb, &token, "node-1", &image.root, Duration::from_secs(10));
    kaas_join::cmd::join::join(&cfg, vec![]).await.map(|_| ())
}

async fn sandbox() -> Sandbox {
    common::sandbox(SandboxConfig::default()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absolute_links_to_the_build_host_land_inside_the_root() {
    let sb = sandbox().await;
    for dir in [
        "etc/kubernetes",
        "var/lib/kubelet",
        "var",
        "var/lib/kaas-join",
    ] {
        let image = Image::new();
        // As an image would hold it: an absolute link, meant for the node's own filesystem.
        image.link(dir, &image.victim);
        joined(&sb, &image)
            .await
            .unwrap_or_else(|e| panic!("{dir}: {e}"));
        assert!(
            image.victim_files().is_empty(),
            "{dir} -> {}: written outside the root: {:?}",
            image.victim.display(),
            image.victim_files()
        );
        // The link means ROOT/<victim path> inside the image.
        let inside = image.root.join(image.victim.strip_prefix("/").unwrap());
        assert!(inside.is_dir(), "{dir}: nothing at {}", inside.display());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relative_links_that_climb_out_stop_at_the_root() {
    let sb = sandbox().await;
    let image = Image::new();
    image.link("etc/kubernetes", "../../../../../../../../victim");
    image.link("var/lib/kubelet", "../../../../../../../../victim-kubelet");
    joined(&sb, &image).await.unwrap();
    assert!(
        image.victim_files().is_empty(),
        "{:?}",
        image.victim_files()
    );
    assert!(image.root.join("victim/kubelet.conf").is_file());
    assert!(image.root.join("victim/pki/ca.crt").is_file());
    // The client key and its link, resolved like the rest.
    let pki = image.root.join("victim-kubelet/pki");
    assert!(pki.join("kubelet-client-current.pem").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_loop_is_an_error_naming_it_and_nothing_is_written() {
    let sb = sandbox().await;
    let image = Image::new();
    image.link("etc/kubernetes", "/etc/kubernetes");
    let err = joined(&sb, &image).await.unwrap_err();
    assert_eq!(
        err.exit_code(),
        kaas_join::model::exit_code::ExitCode::Filesystem
    );
    assert!(
        err.to_string().contains("unresolvable-under-root"),
        "the failed write names the unresolvable path: {err}"
    );
    assert!(image.victim_files().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_removes_nothing_outside_the_root() {
    let sb = sandbox().await;
    let image = Image::new();
    image.link("etc/kubernetes", "/etc/kubernetes-data");
    joined(&sb, &image).await.unwrap();
    // A file of the build host where the absolute link would point on this machine.
    let host_file = image.victim.join("kubelet.conf");
    std::fs::write(&host_file, "not the image's").unwrap();
    let paths = kaas_join::host::paths::Paths::new(&image.root);
    let kubelet_conf = paths.host(KUBELET_KUBECONFIG);
    assert!(kubelet_conf.starts_with(&image.root) && kubelet_conf.is_file());

    let out = common::kaas_join(["reset", "--force", "--root", image.root.to_str().unwrap()]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        !kubelet_conf.exists(),
        "the image's kubelet.conf is removed"
    );
    assert!(!paths.entry(KUBELET_CLIENT_CURRENT).exists());
    assert_eq!(
        std::fs::read_to_string(&host_file).unwrap(),
        "not the image's"
    );
}
