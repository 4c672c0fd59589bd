//! The policy files of a directory: which may be read (inside it, regular, not too
//! large), reading them, and what a watcher compares.

use std::path::{Path, PathBuf};

use super::{Diagnostic, Revision};

#[cfg(test)]
/// The policy files below `dir` that may be read: `*.yaml` and `*.yml` regular files
/// resolving inside `dir`, hidden entries skipped, in name order. Those refused (a link
/// leaving `dir`, a device) are left out: see [`load_dir`](super::load_dir), which names them, and
/// [`fingerprint`], which notices them.
pub fn yaml_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    Ok(list(dir)?.files.into_iter().map(|f| f.path).collect())
}
/// A fingerprint of the policy directory that changes when a policy file's name or
/// content changes, or a refused one appears or goes: what a watcher compares. Reads only
/// what [`load_dir`](super::load_dir) would read, and no more than it would (a refused link is never
/// opened, a file past [`MAX_FILE_BYTES`] is fingerprinted by its size).
pub fn fingerprint(dir: &Path) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    match list(dir) {
        Ok(listing) => {
            for r in &listing.refused {
                h.update(b"refused\0");
                h.update(r.path.to_string_lossy().as_bytes());
                h.update(r.reason.as_bytes());
            }
            for f in &listing.files {
                h.update(b"file\0");
                h.update(f.path.to_string_lossy().as_bytes());
                match read_policy_file(f) {
                    Ok(text) => h.update(text.as_bytes()),
                    Err(e) => h.update(e.as_bytes()),
                }
            }
        }
        Err(e) => h.update(e.to_string().as_bytes()),
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// A policy file may hold at most this many bytes. The largest documents a mapping can
/// need (a role's 10,240 characters of inline policy, a permission set's 32,768) fit many
/// times over; a file past it is not a policy but something merged by mistake (or a link
/// to something that grows: `/dev/zero`).
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// All policy files together may hold at most this many bytes: the controller reads the
/// whole repository at every change.
pub const MAX_TOTAL_BYTES: u64 = 32 * 1024 * 1024;
/// Why a policy file is not read at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// The file or directory, as listed under the policy directory.
    pub path: PathBuf,
    /// Why, in words.
    pub reason: String,
}

/// A policy file that resolves inside the policy directory, and what it resolves to.
#[derive(Debug, Clone)]
pub(super) struct PolicyFile {
    /// As listed under the policy directory (what diagnostics name).
    pub(super) path: PathBuf,
    /// Its canonical path, inside the canonical policy directory: what is opened.
    pub(super) resolved: PathBuf,
    /// Device and inode when listed: the file opened must be that one.
    pub(super) identity: (u64, u64),
    /// Its size when listed.
    pub(super) len: u64,
}

/// The policy files below a directory: those that may be read, and those refused by name.
#[derive(Debug, Default)]
pub(super) struct Listing {
    pub(super) files: Vec<PolicyFile>,
    pub(super) refused: Vec<Refused>,
}

fn is_yaml_name(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml")
    )
}

/// Lists the policy files below `dir`: `*.yaml` and `*.yml`, hidden entries skipped, in
/// name order. Every file and directory must resolve inside `dir` (itself resolved first,
/// so a `dir` reached through links, as git-sync's worktree link, is fine). A link inside
/// it is followed (a Kubernetes ConfigMap volume is `x.yaml -> ..data/x.yaml` and
/// `..data -> ..2026_…`); a link that leaves it, a link that resolves to nothing, and
/// anything that is not a regular file are refused by name and never opened.
pub(super) fn list(dir: &Path) -> std::io::Result<Listing> {
    use std::os::unix::fs::MetadataExt;
    let root = std::fs::canonicalize(dir)?;
    if !std::fs::metadata(&root)?.is_dir() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotADirectory,
            "not a directory",
        ));
    }
    let mut listing = Listing::default();
    let mut visited = std::collections::HashSet::from([root.clone()]);
    let mut stack = vec![(dir.to_path_buf(), root.clone())];
    while let Some((listed, real)) = stack.pop() {
        for entry in std::fs::read_dir(&real)? {
            let entry = entry?;
            let name = entry.file_name();
            if name.to_string_lossy().starts_with('.') {
                continue;
            }
            let path = listed.join(&name);
            let file_type = entry.file_type()?;
            let resolved = if file_type.is_symlink() {
                match std::fs::canonicalize(entry.path()) {
                    Ok(r) => r,
                    Err(_) => {
                        if is_yaml_name(&path) {
                            listing.refused.push(Refused {
                                path,
                                reason: "a symbolic link that resolves to nothing".into(),
                            });
                        }
                        continue;
                    }
                }
            } else {
                real.join(&name)
            };
            let meta = std::fs::metadata(&resolved)?;
            if !resolved.starts_with(&root) {
                if meta.is_dir() || is_yaml_name(&path) {
                    listing.refused.push(Refused {
                        path,
                        reason: format!(
                            "a symbolic link to a {} outside the policy directory: policy files stay in the repository, so it is not read",
                            if meta.is_dir() { "directory" } else { "file" }
                        ),
                    });
                }
                continue;
            }
            if meta.is_dir() {
                if visited.insert(resolved.clone()) {
                    stack.push((path, resolved));
                }
            } else if is_yaml_name(&path) {
                if meta.is_file() {
                    listing.files.push(PolicyFile {
                        path,
                        resolved,
                        identity: (meta.dev(), meta.ino()),
                        len: meta.len(),
                    });
                } else {
                    listing.refused.push(Refused {
                        path,
                        reason: "not a regular file (a device, a pipe or a socket): not read"
                            .into(),
                    });
                }
            }
        }
    }
    listing.files.sort_by(|a, b| a.path.cmp(&b.path));
    listing.refused.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(listing)
}

/// Reads one listed file, at most [`MAX_FILE_BYTES`]: opened at its resolved path, and
/// only if it is still the file that was listed.
pub(super) fn read_policy_file(f: &PolicyFile) -> Result<String, String> {
    use std::io::Read;
    use std::os::unix::fs::MetadataExt;
    if f.len > MAX_FILE_BYTES {
        return Err(too_large(f.len));
    }
    let file = std::fs::File::open(&f.resolved).map_err(|e| format!("cannot read: {e}"))?;
    let meta = file.metadata().map_err(|e| format!("cannot read: {e}"))?;
    if (meta.dev(), meta.ino()) != f.identity || !meta.is_file() {
        return Err("changed while being read; it is read again at the next change".into());
    }
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read: {e}"))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(too_large(bytes.len() as u64));
    }
    String::from_utf8(bytes).map_err(|_| "cannot read: not UTF-8 text".to_string())
}

fn too_large(len: u64) -> String {
    format!(
        "{len} bytes or more; a policy file may have at most {MAX_FILE_BYTES} bytes (1 MiB): not read"
    )
}

/// A diagnostic about a whole file.
pub(super) fn file_diagnostic(file: &Path, message: String) -> Diagnostic {
    Diagnostic {
        file: file.to_path_buf(),
        line: 0,
        column: 0,
        document: 0,
        subject: None,
        field: String::new(),
        message,
    }
}

/// The commit the policy directory is checked out at, if it is inside a git work tree.
pub(super) fn git_revision(dir: &Path) -> Option<Revision> {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["log", "-1", "--format=%H%n%an <%ae>"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let commit = lines
        .next()
        .filter(|c| out.status.success() && !c.is_empty())?;
    Some(Revision {
        commit: commit.to_string(),
        author: lines.next().map(String::from),
    })
}
