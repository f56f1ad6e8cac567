//! Writing a file whole or not at all, for every on-disk cache: a reader (another
//! agent start, a concurrent compile) never sees half a file, and a crash leaves at
//! most a stray temporary file beside it.

use std::path::Path;

/// Writes `bytes` to `path` through a temporary file in the same directory (created if
/// need be) and a rename.
pub(crate) fn write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // The process id keeps two processes writing the same entry apart.
    let partial = path.with_file_name(format!(".{name}.{}.partial", std::process::id()));
    let written = std::fs::write(&partial, bytes).and_then(|()| std::fs::rename(&partial, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    written
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_file_is_written_whole_and_nothing_else_is_left() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("a/b/entry");
        super::write(&path, b"first").expect("written");
        super::write(&path, b"second").expect("replaced");
        assert_eq!(std::fs::read(&path).expect("read"), b"second");
        let names: Vec<_> = std::fs::read_dir(dir.path().join("a/b"))
            .expect("dir")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, ["entry"]);
    }
}
