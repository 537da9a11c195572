//! Five-minute excerpts of MIT-BIH records, shipped in `data/mitdb-excerpts/`
//! (ODC-By 1.0, attributed in that folder's README) and embedded in the
//! binary, so that `demo`, `replay`, `detect`, `analyze` and `check` work from
//! a bare clone, on any machine, without the database.
//!
//! They are read through ordinary record paths under [`ROOT`]
//! (`bundled:/mitdb/201`), so every WFDB reader accepts them unchanged.

use super::WfdbError;
use std::path::{Path, PathBuf};

/// The virtual directory the excerpts are read from.
pub const ROOT: &str = "bundled:/mitdb";

/// One bundled record: its name and the bytes of its three files.
pub struct Excerpt {
    /// The source record's name in the MIT-BIH Arrhythmia Database.
    pub name: &'static str,
    /// What it shows, for listings.
    pub content: &'static str,
    hea: &'static [u8],
    dat: &'static [u8],
    atr: &'static [u8],
}

macro_rules! excerpt {
    ($name:literal, $content:literal) => {
        Excerpt {
            name: $name,
            content: $content,
            hea: include_bytes!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/data/mitdb-excerpts/",
                $name,
                ".hea"
            )),
            dat: include_bytes!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/data/mitdb-excerpts/",
                $name,
                ".dat"
            )),
            atr: include_bytes!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/data/mitdb-excerpts/",
                $name,
                ".atr"
            )),
        }
    };
}

/// Every bundled excerpt.
pub const EXCERPTS: [Excerpt; 5] = [
    excerpt!("100", "sinus rhythm, normal beats (0-300 s)"),
    excerpt!("119", "ventricular bigeminy and trigeminy (180-480 s)"),
    excerpt!(
        "201",
        "atrial fibrillation starting and ending, S and V beats (300-600 s)"
    ),
    excerpt!(
        "221",
        "atrial fibrillation with V beats and two runs of VT (720-1020 s)"
    ),
    excerpt!(
        "232",
        "sinus bradycardia, frequent S beats and long pauses (0-300 s)"
    ),
];

/// The excerpt called `name`, if one is bundled.
pub fn excerpt(name: &str) -> Option<&'static Excerpt> {
    EXCERPTS.iter().find(|e| e.name == name)
}

/// The names of all bundled excerpts, comma-separated (for messages).
pub fn names() -> String {
    EXCERPTS.map(|e| e.name).join(", ")
}

/// The record path of a bundled excerpt (without extension).
pub fn path(name: &str) -> PathBuf {
    Path::new(ROOT).join(name)
}

/// The bytes of a file under [`ROOT`], `None` if `path` is not such a file.
pub(crate) fn file(path: &Path) -> Option<Result<Vec<u8>, WfdbError>> {
    let rest = path.strip_prefix(ROOT).ok()?;
    let name = rest.to_str().unwrap_or_default();
    let (stem, ext) = name.rsplit_once('.').unwrap_or((name, ""));
    let found = excerpt(stem).and_then(|e| match ext {
        "hea" => Some(e.hea),
        "dat" => Some(e.dat),
        "atr" => Some(e.atr),
        _ => None,
    });
    Some(found.map(<[u8]>::to_vec).ok_or_else(|| {
        WfdbError::invalid(
            path,
            format!("no such bundled file; the bundled records are {}", names()),
        )
    }))
}

/// Where to read a record named on the command line.
///
/// A bare name such as `119` is looked up in `db` (the database directory:
/// `--db`, else `$HOLTER_DATA_DIR/mitdb`), then in the working directory, and,
/// when `db` does not exist, in the bundled excerpts. A path (with a directory
/// or an extension) is used as it is. The error says what to set.
pub fn locate(record: &Path, db: &Path) -> Result<PathBuf, WfdbError> {
    let text = record.to_string_lossy();
    let header = record.with_extension("hea");
    if record.starts_with(ROOT) {
        return Ok(record.to_path_buf());
    }
    let bare = record.components().count() == 1 && record.extension().is_none();
    if bare {
        // The database first: a stray `119.hea` in the working directory must not shadow --db.
        let in_db = db.join(record);
        if in_db.with_extension("hea").exists() {
            return Ok(in_db);
        }
    }
    if header.exists() {
        return Ok(record.to_path_buf());
    }
    if !bare {
        return Err(WfdbError::invalid(
            &header,
            format!(
                "not found: give a record's path without extension, or a record name (looked up in --db, else $HOLTER_DATA_DIR/mitdb, else the bundled {})",
                names()
            ),
        ));
    }
    let in_db = db.join(record);
    match (db.is_dir(), excerpt(&text)) {
        (false, Some(_)) => Ok(path(&text)),
        (true, _) => Err(WfdbError::invalid(
            &in_db.with_extension("hea"),
            format!(
                "not found: no record {text:?} in {}; give a record path, or choose the database with --db or HOLTER_DATA_DIR",
                db.display()
            ),
        )),
        (false, None) => Err(WfdbError::invalid(
            &in_db.with_extension("hea"),
            format!(
                "not found, and {} does not exist: set HOLTER_DATA_DIR to a directory holding mitdb/ (the MIT-BIH Arrhythmia Database) or pass --db DIR; without it, the bundled records are {}",
                db.display(),
                names()
            ),
        )),
    }
}

/// The names of the records in `db`, or of the bundled excerpts when `db`
/// does not exist (what `--records all` means).
pub fn all_records(db: &Path) -> Result<Vec<String>, WfdbError> {
    if db.is_dir() {
        super::list_records(db)
    } else {
        Ok(EXCERPTS.iter().map(|e| e.name.to_string()).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fall_back_to_the_bundled_excerpts_only_without_a_database() {
        let missing = Path::new("/nonexistent/holterd-db");
        assert_eq!(locate(Path::new("119"), missing).unwrap(), path("119"));
        let e = locate(Path::new("999"), missing).unwrap_err().to_string();
        assert!(
            e.contains("HOLTER_DATA_DIR") && e.contains("100, 119"),
            "{e}"
        );
        // A database that exists but lacks the record is an error, not a silent fallback.
        let e = locate(Path::new("119"), Path::new(env!("CARGO_MANIFEST_DIR")))
            .unwrap_err()
            .to_string();
        assert!(e.contains("--db"), "{e}");
        let e = locate(Path::new("no/such/record"), missing)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("no/such/record.hea: not found"), "{e}");
    }

    #[test]
    fn bundled_files_read_like_any_others() {
        let missing = Path::new("/nonexistent/holterd-db");
        assert_eq!(all_records(missing).unwrap().len(), EXCERPTS.len());
        for e in &EXCERPTS {
            let r = super::super::read_record(&path(e.name)).unwrap();
            assert_eq!(r.header.fs, 360.0, "{}", e.name);
            assert_eq!(r.len(), 300 * 360, "{}: five minutes", e.name);
            let atr = super::super::read_annotations(&path(e.name).with_extension("atr")).unwrap();
            assert!(atr.len() > 200, "{}: {} annotations", e.name, atr.len());
        }
        let e = super::super::read_record(&path("999"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("no such bundled file"), "{e}");
    }
}
