//! `files.*`: file access inside granted directories only.
//!
//! Paths must be absolute and may not contain `..`. A path is resolved before it is
//! checked: the deepest part that exists is made canonical (resolving symbolic
//! links), the rest is appended, and the result must lie inside a granted directory.
//! So a symbolic link does not lead out either. (A link swapped in between the check and the use is not guarded
//! against; granted directories should not be writable by untrusted parties.)

use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Component, Path, PathBuf};

use super::Capabilities;

/// Largest read handed to a plugin at once.
const MAX_READ: u32 = 16 << 20;
/// Most entries `list-dir` returns.
const MAX_ENTRIES: usize = 100_000;

/// One directory entry.
#[derive(Debug)]
pub(crate) struct Entry {
    pub name: String,
    pub size: u64,
    pub is_dir: bool,
}

impl Capabilities {
    /// `path` resolved, if it lies inside a granted directory.
    fn resolve(&self, path: &str) -> Result<PathBuf, String> {
        let p = Path::new(path);
        if !p.is_absolute() {
            return Err(self.refuse(format!("'{path}' is not an absolute path")));
        }
        if p.components().any(|c| c == Component::ParentDir) {
            return Err(self.refuse(format!("'{path}': '..' is not allowed")));
        }
        let mut existing = p.to_path_buf();
        let mut rest = Vec::new();
        // `symlink_metadata`, not `exists`: a dangling symbolic link exists (and
        // `canonicalize` below refuses it), it must not be taken for a new name that
        // `create` would then follow out of the grant.
        while std::fs::symlink_metadata(&existing).is_err() {
            match (existing.file_name(), existing.parent()) {
                (Some(name), Some(parent)) => {
                    rest.push(name.to_os_string());
                    existing = parent.to_path_buf();
                }
                _ => break,
            }
        }
        let mut resolved = std::fs::canonicalize(&existing)
            .map_err(|e| format!("'{}': {e}", existing.display()))?;
        for name in rest.into_iter().rev() {
            if Path::new(&name)
                .components()
                .any(|c| !matches!(c, Component::Normal(_)))
            {
                return Err(self.refuse(format!("'{path}' leaves the granted directories")));
            }
            resolved.push(name);
        }
        if self.dirs.iter().any(|d| resolved.starts_with(d)) {
            Ok(resolved)
        } else {
            Err(self.refuse(format!(
                "'{path}' is outside the plugin's [grants] dirs ({})",
                if self.dirs.is_empty() {
                    "nothing granted".to_string()
                } else {
                    self.dirs
                        .iter()
                        .map(|d| d.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            )))
        }
    }

    /// `path` resolved, if it is a regular file or does not exist yet: a FIFO or
    /// device would block or misbehave in host code, where the call's deadline cannot
    /// interrupt it.
    fn resolve_file(&self, path: &str) -> Result<PathBuf, String> {
        let file = self.resolve(path)?;
        match std::fs::metadata(&file) {
            Ok(m) if !m.is_file() => Err(format!("'{path}' is not a regular file")),
            _ => Ok(file),
        }
    }

    pub(crate) fn list_dir(&self, path: &str) -> Result<Vec<Entry>, String> {
        let dir = self.resolve(path)?;
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&dir).map_err(|e| io(path, e))? {
            if out.len() == MAX_ENTRIES {
                return Err(format!("'{path}' has more than {MAX_ENTRIES} entries"));
            }
            let entry = entry.map_err(|e| io(path, e))?;
            let Ok(meta) = entry.metadata() else { continue };
            out.push(Entry {
                name: entry.file_name().to_string_lossy().into_owned(),
                size: meta.len(),
                is_dir: meta.is_dir(),
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    pub(crate) fn read_at(&self, path: &str, offset: u64, max: u32) -> Result<Vec<u8>, String> {
        let file = self.resolve_file(path)?;
        let mut f = std::fs::File::open(&file).map_err(|e| io(path, e))?;
        f.seek(SeekFrom::Start(offset)).map_err(|e| io(path, e))?;
        let mut buf = Vec::new();
        f.take(u64::from(max.min(MAX_READ)))
            .read_to_end(&mut buf)
            .map_err(|e| io(path, e))?;
        Ok(buf)
    }

    pub(crate) fn append(&self, path: &str, data: &[u8]) -> Result<u64, String> {
        let file = self.resolve_file(path)?;
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&file)
            .map_err(|e| io(path, e))?;
        f.write_all(data).map_err(|e| io(path, e))?;
        Ok(f.metadata().map_err(|e| io(path, e))?.len())
    }

    pub(crate) fn sync(&self, path: &str) -> Result<(), String> {
        let file = self.resolve_file(path)?;
        let f = std::fs::File::open(&file).map_err(|e| io(path, e))?;
        f.sync_all().map_err(|e| io(path, e))
    }

    pub(crate) fn rename(&self, from: &str, to: &str) -> Result<(), String> {
        let (a, b) = (self.resolve(from)?, self.resolve(to)?);
        std::fs::rename(&a, &b).map_err(|e| io(from, e))?;
        // The rename is durable once the directory is.
        if let Some(dir) = b.parent() {
            let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
        }
        Ok(())
    }

    pub(crate) fn create_dir(&self, path: &str) -> Result<(), String> {
        let dir = self.resolve(path)?;
        std::fs::create_dir_all(&dir).map_err(|e| io(path, e))
    }
}

fn io(path: &str, e: std::io::Error) -> String {
    format!("'{path}': {e}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::Grants;

    #[test]
    fn paths_outside_the_grant_are_refused() {
        let root = tempfile::tempdir().unwrap();
        let granted = root.path().join("granted");
        let other = root.path().join("other");
        std::fs::create_dir_all(&granted).unwrap();
        std::fs::create_dir_all(&other).unwrap();
        std::fs::write(other.join("secret"), b"s").unwrap();
        std::os::unix::fs::symlink(&other, granted.join("link")).unwrap();
        let caps = Capabilities::new(
            "p",
            &Grants {
                http: vec![],
                dirs: vec![granted.clone()],
            },
        );
        let g = granted.display().to_string();
        assert_eq!(caps.append(&format!("{g}/f"), b"x").ok(), Some(1));
        caps.create_dir(&format!("{g}/sub/deeper")).unwrap();
        assert_eq!(caps.append(&format!("{g}/sub/deeper/f"), b"xy").unwrap(), 2);
        assert_eq!(
            caps.read_at(&format!("{g}/sub/deeper/f"), 1, 10).unwrap(),
            b"y"
        );
        let names: Vec<_> = caps
            .list_dir(&g)
            .unwrap()
            .into_iter()
            .map(|e| e.name)
            .collect();
        assert_eq!(names, ["f", "link", "sub"]);
        for bad in [
            format!("{g}/../other/secret"),
            format!("{g}/sub/../f"),
            format!("{g}/link/secret"),
            format!("{g}/link/new"),
            "/etc/passwd".to_string(),
            "relative/f".to_string(),
        ] {
            let e = caps.read_at(&bad, 0, 10).unwrap_err();
            assert!(e.starts_with("capability_denied"), "{bad}: {e}");
        }
        let e = caps.append(&format!("{g}/link/new"), b"x").unwrap_err();
        assert!(e.starts_with("capability_denied"), "{e}");
        assert!(!other.join("new").exists());
        // A dangling link is not a new name to create through.
        std::os::unix::fs::symlink(other.join("planted"), granted.join("dangling")).unwrap();
        assert!(caps.append(&format!("{g}/dangling"), b"x").is_err());
        assert!(!other.join("planted").exists());
        // Nothing but regular files is opened.
        assert!(
            caps.read_at(&g, 0, 1)
                .unwrap_err()
                .contains("not a regular file")
        );
        let e = caps
            .rename(&format!("{g}/f"), &other.join("f").display().to_string())
            .unwrap_err();
        assert!(e.starts_with("capability_denied"), "{e}");
        assert_eq!(caps.refused(), 8);
    }
}
