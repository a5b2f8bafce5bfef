//! Phase 5, write: kubelet's files in an order where kubelet never reads a half-made node
//! (the certificate and its `-current` symlink, the CA, KubeletConfiguration, flags, and
//! kubelet.conf last; each one atomic and fsync'd), then the state "joined", then the pending
//! node key goes. All of it runs on the blocking pool ([`super::blocking`]).

use tokio::time::Instant;

use crate::cmd::error::Error;
use crate::cmd::join::bootstrap::Bootstrapped;
use crate::cmd::join::plan::PlannedFile;
use crate::cmd::join::report::{FileEntry, JoinReport};
use crate::cmd::join::{blocking, remove_if_exists};
use crate::config::JoinConfig;
use crate::host::files;
use crate::host::paths::{Paths, KUBELET_CLIENT_CURRENT, KUBELET_DIR, KUBELET_PKI_DIR};
use crate::k8s::bootstrap::NodeKey;
use crate::node::join_state::{self as state, Phase};

/// The directories the files go in, each cleaned of an interrupted write's temporary files.
const DIRS: [(&str, u32); 4] = [
    ("/etc/kubernetes", 0o755),
    ("/etc/kubernetes/pki", 0o755),
    (KUBELET_DIR, 0o700),
    (KUBELET_PKI_DIR, 0o700),
];

/// Writes the planned files and the certificate, then records the join as finished.
#[tracing::instrument(
    name = "write",
    skip_all,
    fields(node = %cfg.node_name, root = %cfg.root.display(), csr = %done.issued.csr_name)
)]
pub(super) async fn write(
    cfg: &JoinConfig,
    paths: &Paths,
    files: Vec<PlannedFile>,
    done: Bootstrapped,
    report: &mut JoinReport,
) -> Result<(), Error> {
    let t = Instant::now();
    let paths = paths.clone();
    let written = blocking(move || write_and_record(&paths, &files, done)).await?;
    report.step(
        "write",
        format!(
            "{} files written under {}",
            written.len(),
            cfg.root.display()
        ),
        t,
    );
    report.files = written;
    Ok(())
}

/// The files, then the state "joined" with the certificate's expiry, then the key file goes
/// (the key now lives in kubelet's certificate file).
fn write_and_record(
    paths: &Paths,
    files: &[PlannedFile],
    done: Bootstrapped,
) -> Result<Vec<FileEntry>, Error> {
    let Bootstrapped {
        key,
        issued,
        state: mut st,
    } = done;
    let written = write_files(paths, files, &issued.certificate_pem, &key)?;
    st.phase = Phase::Joined;
    st.certificate_not_after = Some(issued.not_after);
    st.updated_at = state::now_rfc3339();
    state::save(paths, &st)?;
    remove_if_exists(&paths.host(state::NODE_KEY))?;
    Ok(written)
}

/// Writes kubelet's certificate (with a relative `-current` symlink, as kubelet's own store
/// does), then the planned files, kubelet.conf last.
fn write_files(
    paths: &Paths,
    files: &[PlannedFile],
    certificate_pem: &str,
    key: &NodeKey,
) -> Result<Vec<FileEntry>, Error> {
    for (dir, mode) in DIRS {
        files::ensure_dir(&paths.host(dir), mode)?;
    }
    for (dir, _) in DIRS {
        files::remove_stale_temp_files(&paths.host(dir))?;
    }
    let mut written = write_client_certificate(paths, certificate_pem, key)?;
    for f in files {
        files::write_atomic(&paths.host(&f.node_path), &f.content, f.mode)?;
        written.push(FileEntry {
            path: f.node_path.clone(),
            mode: format!("{:04o}", f.mode),
            bytes: f.content.len(),
            content: None,
        });
    }
    Ok(written)
}

/// kubelet's store names files kubelet-client-<YYYY-MM-DD-HH-MM-SS>.pem: certificate, then key;
/// `kubelet-client-current.pem` links to the newest.
fn write_client_certificate(
    paths: &Paths,
    certificate_pem: &str,
    key: &NodeKey,
) -> Result<Vec<FileEntry>, Error> {
    let stamp = time::OffsetDateTime::now_utc()
        .format(time::macros::format_description!(
            "[year]-[month]-[day]-[hour]-[minute]-[second]"
        ))
        .map_err(|e| Error::Internal(e.to_string()))?;
    let pem_name = format!("kubelet-client-{stamp}.pem");
    let mut pair = zeroize::Zeroizing::new(Vec::new());
    pair.extend_from_slice(certificate_pem.as_bytes());
    if !certificate_pem.ends_with('\n') {
        pair.push(b'\n');
    }
    pair.extend_from_slice(key.pem().as_bytes());
    let pem_node_path = format!("{}/{pem_name}", KUBELET_PKI_DIR);
    files::write_atomic(&paths.host(&pem_node_path), &pair, 0o600)?;
    let pem_entry = FileEntry {
        path: pem_node_path,
        mode: "0600".into(),
        bytes: pair.len(),
        content: None,
    };
    files::symlink_atomic(
        std::path::Path::new(&pem_name),
        &paths.entry(KUBELET_CLIENT_CURRENT),
    )?;
    let link_entry = FileEntry {
        path: format!("{} -> {pem_name}", KUBELET_CLIENT_CURRENT),
        mode: "link".into(),
        bytes: 0,
        content: None,
    };
    Ok(vec![pem_entry, link_entry])
}
