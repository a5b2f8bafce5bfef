//! The case builder of the configuration-loading tests (tests/config_file.rs,
//! tests/config_load.rs): a temporary directory as `--root` with the `JoinArgs` a test starts
//! from, loaded through `config::load` in an environment with the hostname the test chose. Also
//! the one way tests write a file with a mode ([`write_file`]), and the one way a config file
//! body is loaded on its own ([`load_config_file`], also for tests/properties.rs and the fuzz
//! crate, which includes this file with `#[path]`: it uses kaas-join and tempfile only).
#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use kaas_join::cli::JoinArgs;
use kaas_join::config::{load, ConfigError, Environment, JoinConfig, Warning};

/// The container runtime endpoint of every case (given, so nothing is detected).
pub const CONTAINERD: &str = "unix:///run/containerd/containerd.sock";

/// Writes `text` at `path` (its directory made) with `mode`; the path.
pub fn write_file(path: &Path, text: &str, mode: u32) -> PathBuf {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    path.to_owned()
}

/// Loads `body` as the `--config` file (written 0600 into `dir`) of a join with nothing else
/// but the root `dir/root` and the container runtime, on host `host-a`.
pub fn load_config_file(
    dir: &Path,
    body: &[u8],
) -> Result<(JoinConfig, Vec<Warning>), ConfigError> {
    let path = dir.join("config.yaml");
    std::fs::write(&path, body).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let args = JoinArgs {
        root: dir.join("root"),
        cri_socket: Some(CONTAINERD.into()),
        config: Some(path),
        ..JoinArgs::default()
    };
    load(&args, environment("host-a"))
}

/// No token in the environment, nothing on stdin, this hostname.
pub fn environment(hostname: &str) -> Environment {
    Environment {
        token: None,
        hostname: hostname.into(),
        stdin: None,
    }
}

/// A temporary root and the arguments loaded for it.
pub struct Case {
    pub dir: tempfile::TempDir,
    pub args: JoinArgs,
    hostname: String,
    token: String,
}

impl Case {
    /// No flags but `--root`, and `--cri-socket` so nothing is detected; `token` is what
    /// [`Case::config`] puts in its token file.
    pub fn bare(hostname: &str, token: &str) -> Case {
        let dir = tempfile::tempdir().unwrap();
        let args = JoinArgs {
            root: dir.path().to_owned(),
            cri_socket: Some(CONTAINERD.into()),
            ..JoinArgs::default()
        };
        Case {
            dir,
            args,
            hostname: hostname.into(),
            token: token.into(),
        }
    }

    /// [`Case::bare`] with flags that make a complete join: a server, a private token file
    /// holding `token`, the CA pin `pin`.
    pub fn complete(hostname: &str, token: &str, pin: &str) -> Case {
        let mut case = Case::bare(hostname, token);
        let token_file = write_file(&case.path("token"), &format!("{token}\n"), 0o600);
        case.args.server = vec!["10.0.0.5:6443".into()];
        case.args.token_file = Some(token_file);
        case.args.discovery_token_ca_cert_hash = vec![pin.into()];
        case
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// The case's environment: [`environment`] with its hostname.
    pub fn env(&self) -> Environment {
        environment(&self.hostname)
    }

    /// Writes `text` (with `$TOKEN_FILE` replaced by a private file holding the case's token)
    /// as `--config`, mode 0600.
    pub fn config(&mut self, text: &str) -> PathBuf {
        let token_file = write_file(&self.path("token"), &self.token, 0o600);
        let text = text.replace("$TOKEN_FILE", &token_file.display().to_string());
        let path = write_file(&self.path("config.yaml"), &text, 0o600);
        self.args.config = Some(path.clone());
        path
    }

    pub fn load(&self) -> Result<(JoinConfig, Vec<Warning>), ConfigError> {
        load(&self.args, self.env())
    }

    pub fn load_with(&self, env: Environment) -> Result<(JoinConfig, Vec<Warning>), ConfigError> {
        load(&self.args, env)
    }

    pub fn ok(&self) -> (JoinConfig, Vec<Warning>) {
        self.load().unwrap_or_else(|e| panic!("load failed: {e}"))
    }

    pub fn err(&self) -> ConfigError {
        match self.load() {
            Ok((cfg, _)) => panic!("load succeeded: {cfg:?}"),
            Err(e) => e,
        }
    }
}
