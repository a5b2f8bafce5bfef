//! The packages and what ships with them.
//!
//! Always run: the systemd units keep the directives the packaging relies on (and none that would
//! give kubelet a private mount namespace), and the kaas-join config that each cloud-init example
//! writes loads with the real config loader.
//!
//! `#[ignore]`d, run by `packaging/check.sh` once it has built the packages:
//!
//! ```text
//! KAAS_PACKAGES_DIR=target/packaging/out cargo test --test packaging -- --ignored
//! ```
//!
//! extracts the .deb into a scratch root (`dpkg-deb -x`), creates the directories as the
//! packages' tmpfiles.d file says (`systemd-tmpfiles --root`), and checks files, modes,
//! conffiles and maintainer scripts; reads the .rpm's file list, modes, config flags and scripts
//! with `rpm -qp`. Without the variable they print why they are skipped and pass; with it set
//! and a package or tool missing they fail naming it.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use kaas_join::cli::JoinArgs;
use kaas_join::config::{load, Environment};

const PACKAGES_ENV: &str = "KAAS_PACKAGES_DIR";
const TOKEN: &str = "abcdef.0123456789abcdef";
/// The release profile's goal for the packaged binary: "under 5 MB", held as 5 MiB (as
/// packaging/check.sh).
const MAX_BINARY_BYTES: u64 = 5 * 1024 * 1024;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

// ---------------------------------------------------------------------------------------------
// The units
// ---------------------------------------------------------------------------------------------

/// `Key=value` lines of a unit file (comments and sections dropped), in order.
fn directives(unit: &str) -> Vec<(String, String)> {
    let text = fs::read_to_string(repo(unit)).unwrap();
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with(';'))
        .filter(|l| !l.starts_with('['))
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap_or_else(|| panic!("{unit}: {l:?}"));
            (k.trim().to_string(), v.trim().to_string())
        })
        .collect()
}

fn values<'a>(d: &'a [(String, String)], key: &str) -> Vec<&'a str> {
    d.iter()
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .collect()
}

fn seconds(v: &str) -> u64 {
    if let Some(m) = v.strip_suffix("min") {
        m.parse::<u64>().unwrap() * 60
    } else {
        v.trim_end_matches('s').parse().unwrap()
    }
}

#[test]
fn the_run_unit_keeps_what_kubelet_and_the_packages_need() {
    let d = directives("systemd/kaas-join.service");
    let one = |key: &str| -> &str {
        let v = values(&d, key);
        assert_eq!(v.len(), 1, "{key}: {v:?}");
        v[0]
    };
    assert_eq!(one("Type"), "notify");
    assert!(one("ExecStart").starts_with("/usr/bin/kaas-join run"));
    assert_eq!(one("Restart"), "always");
    assert!(seconds(one("WatchdogSec")) >= 20);
    assert_eq!(one("KillMode"), "mixed");
    // Above the supervisor's 30 s grace for kubelet, its 10 s wait after SIGKILL and 5 s for
    // the health reporter.
    assert!(seconds(one("TimeoutStopSec")) > 45);
    assert!(seconds(one("TimeoutStartSec")) >= 60);
    let conflicts = values(&d, "Conflicts").join(" ");
    assert!(conflicts.contains("kubelet.service"), "{conflicts}");
    assert!(
        conflicts.contains("kaas-join-oneshot.service"),
        "{conflicts}"
    );
    let after = values(&d, "After").join(" ");
    for unit in [
        "network-online.target",
        "containerd.service",
        "kubelet.service",
    ] {
        assert!(after.contains(unit), "After= lacks {unit}: {after}");
    }
    assert!(values(&d, "Wants")
        .join(" ")
        .contains("network-online.target"));
    assert_eq!(one("WantedBy"), "multi-user.target");
    // `run` waits for its config by itself: a condition would skip the unit for good.
    assert!(values(&d, "ConditionPathExists").is_empty());
    // kubelet must share the host's mount namespace and propagation.
    for key in [
        "PrivateTmp",
        "ProtectSystem",
        "ProtectHome",
        "PrivateDevices",
        "PrivateMounts",
        "ReadOnlyPaths",
        "InaccessiblePaths",
        "ReadWritePaths",
        "TemporaryFileSystem",
        "BindPaths",
        "BindReadOnlyPaths",
        "ProtectKernelTunables",
        "ProtectKernelModules",
        "ProtectKernelLogs",
        "ProtectControlGroups",
        "ProtectProc",
        "ProtectClock",
        "ProtectHostname",
        "MountFlags",
        "RootDirectory",
        "RootImage",
        "NoNewPrivileges",
        "RestrictSUIDSGID",
        "Delegate",
    ] {
        assert!(
            values(&d, key).is_empty(),
            "kaas-join.service must not set {key}="
        );
    }
}

#[test]
fn the_oneshot_unit_conflicts_with_the_run_unit() {
    let d = directives("systemd/kaas-join-oneshot.service");
    assert_eq!(values(&d, "Type"), ["oneshot"]);
    assert!(values(&d, "ExecStart")[0].starts_with("/usr/bin/kaas-join join"));
    assert!(values(&d, "Conflicts")
        .join(" ")
        .contains("kaas-join.service"));
    assert_eq!(values(&d, "Before"), ["kubelet.service"]);
}

// ---------------------------------------------------------------------------------------------
// The cloud-init examples
// ---------------------------------------------------------------------------------------------

fn cloud_init_examples() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(repo("packaging/cloud-init"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 3, "{files:?}");
    files
}

/// `write_files` of a cloud-config: path → (permissions, content).
fn write_files(example: &Path) -> BTreeMap<String, (String, String)> {
    let text = fs::read_to_string(example).unwrap();
    assert!(text.starts_with("#cloud-config\n"), "{}", example.display());
    let doc: serde_json::Value = serde_norway::from_str(&text).unwrap();
    doc["write_files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["path"].as_str().unwrap().to_string(),
                (
                    f["permissions"].as_str().unwrap_or("").to_string(),
                    f["content"].as_str().unwrap().to_string(),
                ),
            )
        })
        .collect()
}

#[test]
fn cloud_init_examples_write_a_private_token_and_a_config_that_loads() {
    let mut configs = 0;
    for example in cloud_init_examples() {
        let name = example.display().to_string();
        let files = write_files(&example);
        let (mode, token) = files
            .get("/etc/kaas-join/token")
            .unwrap_or_else(|| panic!("{name}: no token file"));
        assert_eq!(mode, "0600", "{name}");
        assert_eq!(token.trim(), TOKEN, "{name}");
        let text = fs::read_to_string(&example).unwrap();
        let Some((_, config)) = files.get("/etc/kaas-join/config.yaml") else {
            // (a) joins from runcmd with flags.
            assert!(text.contains("--token-file"), "{name}");
            continue;
        };
        configs += 1;
        assert!(
            text.contains("[systemctl, enable, --now, --no-block, kaas-join.service]"),
            "{name}: must start the unit without waiting for the join"
        );
        let dir = tempfile::tempdir().unwrap();
        // (b) leaves the runtime to detection: give the scratch root a containerd socket.
        fs::create_dir_all(dir.path().join("run/containerd")).unwrap();
        let _runtime = std::os::unix::net::UnixListener::bind(
            dir.path().join("run/containerd/containerd.sock"),
        )
        .unwrap();
        let path = dir.path().join("config.yaml");
        fs::write(&path, config).unwrap();
        let args = JoinArgs {
            config: Some(path),
            root: dir.path().to_owned(),
            ..JoinArgs::default()
        };
        let env = Environment {
            // The config names /etc/kaas-join/token, which this machine does not have.
            token: Some(TOKEN.into()),
            hostname: "worker-1".into(),
            stdin: None,
        };
        let (cfg, _) = load(&args, env).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(!cfg.servers.is_empty() && !cfg.ca_pins.is_empty(), "{name}");
        if name.contains("kubelet-overrides") {
            assert!(cfg.kubelet_overrides.is_some(), "{name}");
            assert!(!cfg.node_labels.is_empty(), "{name}");
        }
    }
    assert_eq!(configs, 2);
}

// ---------------------------------------------------------------------------------------------
// The built packages
// ---------------------------------------------------------------------------------------------

fn packages_dir() -> Option<PathBuf> {
    match std::env::var_os(PACKAGES_ENV) {
        Some(d) if !d.is_empty() => Some(PathBuf::from(d)),
        _ => {
            println!(
                "skipped: {PACKAGES_ENV} is not set (packaging/check.sh builds the packages and \
                 sets it)"
            );
            None
        }
    }
}

fn the_one(dir: &Path, ext: &str) -> PathBuf {
    let found: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    assert_eq!(found.len(), 1, "one .{ext} in {}: {found:?}", dir.display());
    found.into_iter().next().unwrap()
}

fn output(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e} (is it installed?)"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// What both packages must hold: path → mode.
const FILES: [(&str, u32); 13] = [
    ("/usr/bin/kaas-join", 0o755),
    ("/usr/lib/systemd/system/kaas-join.service", 0o644),
    ("/usr/lib/systemd/system/kaas-join-oneshot.service", 0o644),
    ("/usr/lib/tmpfiles.d/kaas-join.conf", 0o644),
    ("/etc/kaas-join/config.yaml.example", 0o644),
    ("/usr/share/man/man1/kaas-join.1.gz", 0o644),
    ("/usr/share/man/man1/kaas-join-join.1.gz", 0o644),
    ("/usr/share/man/man1/kaas-join-run.1.gz", 0o644),
    ("/usr/share/man/man1/kaas-join-status.1.gz", 0o644),
    ("/usr/share/man/man1/kaas-join-completions.1.gz", 0o644),
    ("/usr/share/bash-completion/completions/kaas-join", 0o644),
    ("/usr/share/fish/vendor_completions.d/kaas-join.fish", 0o644),
    ("/usr/share/doc/kaas-join/README.md", 0o644),
];

#[test]
#[ignore = "needs KAAS_PACKAGES_DIR with the built .deb (packaging/check.sh)"]
fn the_deb_installs_its_files_with_their_modes() {
    let Some(dir) = packages_dir() else { return };
    let deb = the_one(&dir, "deb");
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    output(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(r));

    let zsh = ("/usr/share/zsh/vendor-completions/_kaas-join", 0o644);
    for (path, mode) in FILES.iter().chain([&zsh]) {
        let meta = fs::metadata(r.join(&path[1..])).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert!(meta.is_file(), "{path}");
        assert_eq!(meta.permissions().mode() & 0o7777, *mode, "{path}");
    }
    // No config.yaml: `run` would try to join the example's placeholder server.
    assert!(!r.join("etc/kaas-join/config.yaml").exists());
    let binary = r.join("usr/bin/kaas-join");
    let size = fs::metadata(&binary).unwrap().len();
    assert!(size < MAX_BINARY_BYTES, "binary is {size} bytes");
    println!("packaged binary: {size} bytes");
    // The packaged binary runs, and its generated files are its own.
    assert!(output(Command::new(&binary).arg("--version")).starts_with("kaas-join "));
    let bash =
        fs::read_to_string(r.join("usr/share/bash-completion/completions/kaas-join")).unwrap();
    assert_eq!(
        bash,
        output(Command::new(&binary).args(["completions", "bash"]))
    );

    // The directories, as the tmpfiles.d file (and the postinst) creates them.
    if Command::new("systemd-tmpfiles")
        .arg("--version")
        .output()
        .is_ok()
    {
        output(
            Command::new("systemd-tmpfiles")
                .arg(format!("--root={}", r.display()))
                .arg("--create")
                .arg(r.join("usr/lib/tmpfiles.d/kaas-join.conf")),
        );
        for (path, mode) in [("etc/kaas-join", 0o750), ("var/lib/kaas-join", 0o700)] {
            let meta = fs::metadata(r.join(path)).unwrap();
            assert!(meta.is_dir(), "{path}");
            assert_eq!(meta.permissions().mode() & 0o7777, mode, "{path}");
        }
    } else {
        println!("systemd-tmpfiles not installed: directory modes not checked");
    }

    // Control: conffile, maintainer scripts.
    let control = tempfile::tempdir().unwrap();
    output(
        Command::new("dpkg-deb")
            .arg("-e")
            .arg(&deb)
            .arg(control.path()),
    );
    let read = |name: &str| fs::read_to_string(control.path().join(name)).unwrap_or_default();
    assert_eq!(
        read("conffiles").trim(),
        "/etc/kaas-join/config.yaml.example"
    );
    let postinst = read("postinst");
    assert!(postinst.contains("install -d -m 0750 -o root -g root /etc/kaas-join"));
    assert!(postinst.contains("install -d -m 0700 -o root -g root /var/lib/kaas-join"));
    assert!(postinst.contains("deb-systemd-helper enable kaas-join.service"));
    // The one-shot unit is enabled again on upgrade only if an admin had enabled it.
    assert!(postinst.contains("if deb-systemd-helper debian-installed kaas-join-oneshot.service"));
    assert_eq!(
        postinst.matches("deb-systemd-helper enable").count(),
        2,
        "{postinst}"
    );
    assert_eq!(
        postinst.matches("#!/bin/sh").count(),
        1,
        "one script: {postinst}"
    );
    assert!(postinst.contains("systemctl --system daemon-reload"));
    assert!(postinst.contains("systemd-tmpfiles --create kaas-join.conf"));
    // Never started on install: only try-restarted on upgrade.
    assert!(postinst.contains("deb-systemd-invoke try-restart kaas-join.service"));
    assert!(!postinst.contains("_dh_action=start"));
    assert!(!postinst.contains("try-restart kaas-join-oneshot.service"));
    let prerm = read("prerm");
    assert!(prerm.contains("deb-systemd-invoke stop kaas-join.service"));
    assert!(!prerm.contains("stop kaas-join-oneshot.service"));
    assert!(prerm.contains("deb-systemd-helper disable kaas-join-oneshot.service"));
    let postrm = read("postrm");
    let purge = postrm.find("\"purge\"").expect("a purge branch");
    let rm = postrm
        .find("rm -rf /var/lib/kaas-join")
        .expect("state removed");
    assert!(rm > purge, "state removed on purge only:\n{postrm}");
    for script in ["postinst", "prerm", "postrm"] {
        let mode = fs::metadata(control.path().join(script))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o755, "{script}");
        assert!(read(script).starts_with("#!/bin/sh\n"), "{script}");
    }
}

#[test]
#[ignore = "needs KAAS_PACKAGES_DIR with the built .rpm (packaging/check.sh)"]
fn the_rpm_holds_its_files_with_their_modes_and_scripts() {
    let Some(dir) = packages_dir() else { return };
    let rpm = the_one(&dir, "rpm");
    // --dump: path size mtime digest mode owner group isconfig isdoc rdev symlink
    let dump = output(Command::new("rpm").args(["-qp", "--dump"]).arg(&rpm));
    let entries: BTreeMap<&str, Vec<&str>> = dump
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f[0], f)
        })
        .collect();
    let zsh = ("/usr/share/zsh/site-functions/_kaas-join", 0o644);
    for (path, mode) in FILES.iter().chain([&zsh]) {
        let f = entries
            .get(path)
            .unwrap_or_else(|| panic!("{path} not in the rpm:\n{dump}"));
        let full = u32::from_str_radix(f[4], 8).unwrap();
        assert_eq!(full & 0o170000, 0o100000, "{path} is a regular file");
        assert_eq!(full & 0o7777, *mode, "{path}");
        assert_eq!((f[5], f[6]), ("root", "root"), "{path}");
        assert_eq!(
            f[7],
            if path.starts_with("/etc/") { "1" } else { "0" },
            "{path}"
        );
    }
    let size: u64 = entries["/usr/bin/kaas-join"][1].parse().unwrap();
    assert!(size < MAX_BINARY_BYTES, "binary is {size} bytes");
    let configs = output(Command::new("rpm").args(["-qcp"]).arg(&rpm));
    assert_eq!(configs.trim(), "/etc/kaas-join/config.yaml.example");
    // %config(noreplace): an admin's edits survive upgrades.
    let flags = output(
        Command::new("rpm")
            .args(["-qp", "--qf", "[%{FILENAMES} %{FILEFLAGS:fflags}\n]"])
            .arg(&rpm),
    );
    let example = flags
        .lines()
        .find(|l| l.starts_with("/etc/kaas-join/config.yaml.example "))
        .unwrap();
    assert!(example.contains('n'), "not noreplace: {example}");

    let scripts = output(Command::new("rpm").args(["-qp", "--scripts"]).arg(&rpm));
    for needle in [
        "postinstall scriptlet",
        "install -d -m 0750 -o root -g root /etc/kaas-join",
        "install -d -m 0700 -o root -g root /var/lib/kaas-join",
        "systemctl daemon-reload",
        "if [ \"$1\" -eq 1 ]; then",
        "systemctl --no-reload enable kaas-join.service",
        "preuninstall scriptlet",
        "systemctl --no-reload disable --now kaas-join.service",
        "systemctl --no-reload disable kaas-join-oneshot.service",
        "postuninstall scriptlet",
        "systemctl try-restart kaas-join.service",
    ] {
        assert!(scripts.contains(needle), "no {needle:?} in\n{scripts}");
    }
    assert!(!scripts.contains("systemctl start"), "{scripts}");
    assert!(!scripts.contains("enable --now"), "{scripts}");
}
