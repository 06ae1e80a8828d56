//! One symbolised frame, and which frames are the allocator's own: what
//! the symbolisers produce and the stack trimming reads. A leaf of
//! `sampling`, so that `stacks` and `symbols` both use it without
//! importing each other.

/// One symbolised frame of a call stack.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct Frame {
    /// Demangled function name without its hash, or `"??"`.
    pub function: String,
    /// Source file, if debug info has it.
    pub file: Option<String>,
    /// Source line, if debug info has it.
    pub line: Option<u32>,
}

impl Frame {
    /// Whether this frame belongs to the standard library (`std`, `core`,
    /// `alloc`) rather than to the program.
    ///
    /// Frames inlined in release builds often carry only a short name
    /// (`with_capacity_in<u8>`), so the source path decides too: std's
    /// sources live under `/rustc/<hash>/library/`.
    pub fn is_std(&self) -> bool {
        const STD: &[&str] = &[
            "std::", "core::", "alloc::", "<std::", "<core::", "<alloc::", "__rust",
        ];
        let by_name = STD.iter().any(|p| self.function.starts_with(p));
        let by_file = self.file.as_deref().is_some_and(|f| {
            f.starts_with("/rustc/")
                || f.contains("/library/std/")
                || f.contains("/library/core/")
                || f.contains("/library/alloc/")
        });
        by_name || by_file
    }
}

/// The tracker's source directory, as debug information names its files.
const TRACKER_SRC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src/");

impl Frame {
    /// Whether this frame is the tracker's own code (`scope_alloc_tracker::…`,
    /// by name, or by a source file of the tracker when the debug
    /// information gives short names). A leak site's
    /// [`origin`](crate::leak::LeakSite::origin) is never such a frame.
    pub fn is_tracker(&self) -> bool {
        let f = self.function.strip_prefix('<').unwrap_or(&self.function);
        f.starts_with("scope_alloc_tracker::")
            || self
                .file
                .as_deref()
                .is_some_and(|file| file.starts_with(TRACKER_SRC))
    }

    /// Whether this frame is the allocator's code or one of std's thin
    /// wrappers around the global allocator (`alloc::alloc::alloc`),
    /// which reports trim from the top of a stack.
    pub(crate) fn is_allocator_wrapper(&self) -> bool {
        let by_file = self.file.as_deref().is_some_and(|file| {
            file.ends_with("library/alloc/src/alloc.rs")
                || (file.starts_with(TRACKER_SRC)
                    && (file[TRACKER_SRC.len()..].starts_with("allocator/")
                        || file[TRACKER_SRC.len()..].starts_with("sampling/")))
        });
        by_file
            || self.function.starts_with("alloc::alloc::")
            || is_allocator_path(&self.function)
            || is_allocator_entry(&self.function)
    }
}

impl Frame {
    /// The source file as `Display` shows it: std's sources as
    /// `<rust>/library/...` instead of `/rustc/<commit hash>/library/...`,
    /// and files below the current directory relative to it.
    pub fn short_file(&self) -> Option<String> {
        let file = self.file.as_deref()?;
        if let Some(rest) = file.strip_prefix("/rustc/") {
            if let Some((_hash, path)) = rest.split_once('/') {
                return Some(format!("<rust>/{path}"));
            }
        }
        if let Ok(cwd) = std::env::current_dir() {
            if let Ok(rel) = std::path::Path::new(file).strip_prefix(&cwd) {
                return Some(rel.display().to_string());
            }
        }
        Some(file.to_string())
    }
}

impl std::fmt::Display for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.function)?;
        if let Some(file) = self.short_file() {
            write!(f, " at {file}")?;
            if let Some(line) = self.line {
                write!(f, ":{line}")?;
            }
        }
        Ok(())
    }
}

/// The frame through which the program entered the allocator: everything
/// above it (inner) is the tracker, the backtrace walk and std's allocation
/// shims.
pub(crate) fn is_allocator_entry(function: &str) -> bool {
    const ENTRIES: &[&str] = &[
        "__rust_alloc",
        "__rust_realloc",
        "__rust_alloc_zeroed",
        "__rustc::__rust_alloc",
        "__rustc::__rust_realloc",
        "__rustc::__rust_alloc_zeroed",
        "__rdl_alloc",
        "__rdl_realloc",
    ];
    ENTRIES.contains(&function)
        || function.contains("as core::alloc::global::GlobalAlloc>::alloc")
        || function.contains("as core::alloc::global::GlobalAlloc>::realloc")
        // The hot path is inlined into the shim, which may itself be
        // inlined into std's `alloc::alloc::alloc`, and reaches the general
        // path with a tail call: then no frame names the shim or
        // `GlobalAlloc`, and the outermost tracker frame is the entry.
        || function.starts_with("scope_alloc_tracker::allocator::")
}

/// Whether a demangled function path is the allocator's own code: the
/// tracker's `allocator` and `sampling` modules (the record path and the
/// stack capture), `<TrackingAlloc as GlobalAlloc>` included. Scope
/// helpers that run the user's code (`in_scope`, `InScope::poll`) are not.
pub(crate) fn is_allocator_path(function: &str) -> bool {
    let f = function.strip_prefix('<').unwrap_or(function);
    f.starts_with("scope_alloc_tracker::allocator::")
        || f.starts_with("scope_alloc_tracker::sampling::")
}

#[cfg(test)]
mod tests {
    use super::{is_allocator_entry, Frame};

    #[test]
    fn the_tracker_allocator_frames_end_the_trimmed_part() {
        // Reached by a tail call from the inlined shim: no shim frame.
        assert!(is_allocator_entry(
            "scope_alloc_tracker::allocator::hybrid::alloc"
        ));
        assert!(is_allocator_entry("__rustc::__rust_alloc"));
        // A user's closure run by `in_scope` is the program's, not ours.
        assert!(!is_allocator_entry(
            "scope_alloc_tracker::scope::ScopeId::in_scope"
        ));
        assert!(!is_allocator_entry("alloc::alloc::alloc"));
    }

    #[test]
    fn display_shortens_std_and_local_paths() {
        let std_frame = Frame {
            function: "alloc::raw_vec::finish_grow".into(),
            file: Some("/rustc/0123456789abcdef/library/alloc/src/raw_vec.rs".into()),
            line: Some(7),
        };
        assert_eq!(
            std_frame.to_string(),
            "alloc::raw_vec::finish_grow at <rust>/library/alloc/src/raw_vec.rs:7"
        );
        let here = std::env::current_dir().unwrap().join("src/lib.rs");
        let local = Frame {
            function: "my::f".into(),
            file: Some(here.display().to_string()),
            line: None,
        };
        assert_eq!(local.to_string(), "my::f at src/lib.rs");
    }
}
